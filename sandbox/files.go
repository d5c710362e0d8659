package sandbox

import (
	"fmt"

	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/spec"
)

// files: the pod's hostname, resolv.conf and hosts, and their binds (and
// /dev/shm's) into the pause's spec.
func (b *Builder) files(p *plan, probs *problems) []spec.Opt {
	cfg := p.Config
	hostname, err := dns.Hostname(cfg.Hostname, p.ID, p.hostNetwork, b.opts.NodeHostname)
	if err != nil {
		probs.add("hostname", describe(err), err)
	}
	p.Hostname = hostname
	p.hostnameFile = dns.HostnameFile(hostname)
	p.hosts = dns.Hosts(hostname, nil)

	if c := cfg.DNSConfig; c != nil && !(dns.Config{Servers: c.Servers, Searches: c.Searches, Options: c.Options}).IsZero() {
		p.resolv, err = dns.Render(dns.Config{Servers: c.Servers, Searches: c.Searches, Options: c.Options})
		if err != nil {
			probs.dnsConfig(err)
		}
	} else if p.resolv, err = b.nodeResolv.ForPod(p.hostNetwork); err != nil {
		probs.add("dns_config", "none given, and the node's resolv.conf cannot be used: "+err.Error(), err)
	}

	opts := []spec.Opt{spec.WithMounts(
		mounts.ShmBind(p.Files.Shm),
		mounts.ReadOnlyBind(p.Files.ResolvConf, "/etc/resolv.conf"),
		mounts.ReadOnlyBind(p.Files.Hostname, "/etc/hostname"),
		mounts.ReadOnlyBind(p.Files.Hosts, "/etc/hosts"),
	)}
	if !p.hostNetwork {
		opts = append(opts, spec.WithHostname(hostname))
	}
	return opts
}

// dnsConfig adds the problems of a pod's DNS config, one per entry.
func (p *problems) dnsConfig(err error) {
	errs := []error{err}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		errs = u.Unwrap()
	}
	for _, e := range errs {
		field := "dns_config"
		if ve, ok := e.(*dns.ValidationError); ok {
			field += "." + ve.Field
			if ve.Index >= 0 {
				field += fmt.Sprintf("[%d]", ve.Index)
			}
		}
		p.add(field, describe(e), e)
	}
}
