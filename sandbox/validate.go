package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/internal/quantity"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/spec"
)

// Limits on a pod config (Kubernetes' own where it has one).
const (
	maxNameLen      = 253 // metadata.name: a DNS subdomain
	maxNamespaceLen = 63  // metadata.namespace: a DNS label
	maxUIDLen       = 128
	maxKeyLen       = 317 // a qualified name: 253-byte prefix, '/', 63-byte name
	maxValueLen     = 64 << 10
	maxMetadataSize = 256 << 10 // labels and annotations together, as Kubernetes limits annotations
	maxLogDirLen    = 4096
	maxID           = 1<<32 - 2 // the largest uid/gid a process can have
	// maxPortMappings bounds a pod's port mappings. Neither kubelet nor
	// CRI-O has a limit, but no real pod publishes hundreds of host ports,
	// and each costs about 30-50 ms in CNI's portmap plugin here (so 128
	// take about 4 s; the 5000 of an attack took minutes).
	maxPortMappings = 128
)

// checkPod is the concern of what the pod says of itself: metadata, log
// directory, labels and annotations, port mappings, resources. It adds
// nothing to the spec.
func checkPod(o Options) concern {
	return func(p *plan, probs *problems) []spec.Opt {
		cfg := p.Config
		probs.metadata(cfg.Metadata)
		probs.logDirectory(cfg.LogDirectory, o.StateDir, o.RunDir, o.NetnsDir)
		probs.portMappings(cfg.PortMappings)
		if h := cfg.RuntimeHandler; h != "" && o.RuntimeHandlers[h] == nil {
			probs.addf("runtime_handler", "%q: the Builder has no runtime of that name", truncate(h))
		}
		size := probs.keyValues("labels", cfg.Labels) + probs.keyValues("annotations", cfg.Annotations)
		if size > maxMetadataSize {
			probs.addf("annotations", "labels and annotations together are %d bytes, more than %d", size, maxMetadataSize)
		}
		for k := range cfg.Annotations {
			if strings.HasPrefix(k, spec.AnnotationPrefix) {
				probs.addf(fmt.Sprintf("annotations[%q]", truncate(k)), "the prefix %q is reserved for podsmith", spec.AnnotationPrefix)
			}
		}
		// kubelet's bounds of the bandwidth annotations (the network's
		// Prepare checks them again).
		for _, k := range []string{"kubernetes.io/ingress-bandwidth", "kubernetes.io/egress-bandwidth"} {
			if v, ok := cfg.Annotations[k]; ok {
				n, err := quantity.Parse(v)
				if err == nil && (n < 1e3 || n > 1e15) {
					err = fmt.Errorf("%q: %d bits per second, not between 1k and 1P", truncate(v), n)
				}
				if err != nil {
					probs.add(fmt.Sprintf("annotations[%q]", k), describe(err), err)
				}
			}
		}
		if l := cfg.Linux; l != nil {
			for _, r := range []struct {
				field string
				res   *pod.Resources
			}{{"linux.overhead", l.Overhead}, {"linux.resources", l.Resources}} {
				if r.res != nil && (r.res.CPUShares < 0 || r.res.CPUQuota < -1 || r.res.CPUPeriod < 0 || r.res.MemoryLimitInBytes < 0 ||
					r.res.OomScoreAdj < -1000 || r.res.OomScoreAdj > 1000) {
					probs.addf(r.field, "negative or out-of-range values")
				}
			}
		}
		return nil
	}
}

// nameChars reports whether s is made of letters, digits, '-' and '.', and
// starts with a letter or digit: safe in file names and in the sandbox
// name's "_"-separated fields.
func nameChars(s string) bool {
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '-' && r != '.') {
			return false
		}
	}
	return s != ""
}

func (p *problems) metadata(m pod.Metadata) {
	check := func(field, value string, max int) {
		switch {
		case value == "":
			p.addf(field, "required")
		case len(value) > max:
			p.addf(field, "longer than %d bytes", max)
		case !nameChars(value):
			p.addf(field, "%q must be letters, digits, '-' and '.', starting with a letter or digit", truncate(value))
		}
	}
	check("metadata.name", m.Name, maxNameLen)
	check("metadata.namespace", m.Namespace, maxNamespaceLen)
	check("metadata.uid", m.UID, maxUIDLen)
}

// logDirectory checks that dir is a clean absolute path none of whose
// existing components is a symlink (a symlink could point the runtime's
// log writes anywhere on the node), outside the Builder's own dirs.
func (p *problems) logDirectory(dir string, own ...string) {
	const field = "log_directory"
	switch {
	case dir == "":
		return
	case len(dir) > maxLogDirLen:
		p.addf(field, "longer than %d bytes", maxLogDirLen)
		return
	case strings.ContainsAny(dir, "\x00\n"):
		p.addf(field, "contains NUL or a newline")
		return
	case !filepath.IsAbs(dir):
		p.addf(field, "%q is not an absolute path", truncate(dir))
		return
	case filepath.Clean(dir) != dir:
		p.addf(field, "%q is not a clean path (%q)", truncate(dir), filepath.Clean(dir))
		return
	}
	for _, d := range own {
		if dir == d || strings.HasPrefix(dir, d+"/") {
			p.addf(field, "%q is inside the Builder's own %s: logs must go elsewhere", truncate(dir), d)
		}
	}
	prefix := "/"
	for _, elem := range strings.Split(dir[1:], "/") {
		prefix = filepath.Join(prefix, elem)
		st, err := os.Lstat(prefix)
		if errors.Is(err, os.ErrNotExist) {
			return // the rest does not exist yet: no symlink in it
		}
		if err != nil {
			p.add(field, err.Error(), err)
			return
		}
		if st.Mode()&os.ModeSymlink != 0 {
			target, _ := filepath.EvalSymlinks(prefix)
			p.addf(field, "%s is a symlink (to %q); give the real path", prefix, target)
			return
		}
		if !st.IsDir() {
			p.addf(field, "%s is not a directory", prefix)
			return
		}
	}
}

func (p *problems) portMappings(pms []pod.PortMapping) {
	if len(pms) > maxPortMappings {
		p.addf("port_mappings", "%d mappings, more than %d", len(pms), maxPortMappings)
		return
	}
	// A host port is taken on one address, or on every address (host_ip
	// empty, 0.0.0.0 or ::, as CNI's portmap treats them): a second
	// mapping of the same protocol and port must not overlap the first,
	// or one of them silently shadows the other.
	type key struct {
		proto pod.Protocol
		port  int32
	}
	type use struct {
		ip    string // "" for every address
		index int
	}
	taken := map[key][]use{}
	for i, pm := range pms {
		field := fmt.Sprintf("port_mappings[%d]", i)
		if pm.Protocol < pod.ProtocolTCP || pm.Protocol > pod.ProtocolSCTP {
			p.addf(field+".protocol", "%d is not TCP (0), UDP (1) or SCTP (2)", pm.Protocol)
		}
		if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
			p.addf(field+".container_port", "%d is not a port (1-65535)", pm.ContainerPort)
		}
		if pm.HostPort < 0 || pm.HostPort > 65535 {
			p.addf(field+".host_port", "%d is not a port (0-65535, 0 for none)", pm.HostPort)
		}
		ip := ""
		if pm.HostIP != "" {
			addr, err := netip.ParseAddr(pm.HostIP)
			if err != nil {
				p.add(field+".host_ip", fmt.Sprintf("%q is not an IP address", truncate(pm.HostIP)), err)
				continue
			}
			if !addr.IsUnspecified() {
				ip = addr.Unmap().String()
			}
		}
		if pm.HostPort <= 0 {
			continue
		}
		k := key{pm.Protocol, pm.HostPort}
		for _, u := range taken[k] {
			if u.ip == "" || ip == "" || u.ip == ip {
				on := "every address"
				if u.ip != "" && ip != "" {
					on = ip
				}
				p.addf(field+".host_port", "%s %d overlaps port_mappings[%d] (the same port, on %s)", pm.Protocol, pm.HostPort, u.index, on)
				break
			}
		}
		taken[k] = append(taken[k], use{ip, i})
	}
}

// keyValues checks labels or annotations and returns their size.
func (p *problems) keyValues(field string, m map[string]string) int {
	size := 0
	for k, v := range m {
		size += len(k) + len(v)
		f := fmt.Sprintf("%s[%q]", field, truncate(k))
		switch {
		case k == "":
			p.addf(f, "empty key")
		case len(k) > maxKeyLen:
			p.addf(f, "key longer than %d bytes", maxKeyLen)
		case strings.IndexFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r))
		}) >= 0:
			p.addf(f, "key must be letters, digits, '-', '_', '.' and '/'")
		}
		if len(v) > maxValueLen {
			p.addf(f, "value longer than %d bytes", maxValueLen)
		}
		if strings.ContainsRune(v, 0) {
			p.addf(f, "value contains NUL")
		}
	}
	return size
}

// sysctls adds a problem for each sysctl NormalizeSysctls refused.
func (p *problems) sysctls(field string, err error) {
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var se *spec.SysctlError
		if errors.As(e, &se) {
			p.add(fmt.Sprintf("%s[%q]", field, truncate(se.Name)), se.Reason, se)
		}
	}
}

// describe says what is wrong, from a leaf package's typed error: its
// reason (and the value it refused), without the package's prefix.
func describe(err error) string {
	var (
		ve *dns.ValidationError
		se *spec.SeccompError
		qe *quantity.Error
	)
	switch {
	case errors.As(err, &ve):
		if ve.Index >= 0 || ve.Value != "" {
			return fmt.Sprintf("%q: %s", truncate(ve.Value), ve.Reason)
		}
		return ve.Reason
	case errors.As(err, &se):
		msg := se.Reason
		if se.Path != "" {
			msg = se.Path + ": " + msg
		}
		if se.Err != nil {
			msg += ": " + se.Err.Error()
		}
		return msg
	case errors.As(err, &qe):
		return fmt.Sprintf("%q: %s", truncate(qe.Value), qe.Reason)
	}
	return err.Error()
}

// jsonString is v in JSON, for an annotation: plain data, which cannot
// fail to encode.
func jsonString(v any) string {
	out, _ := json.Marshal(v)
	return string(out)
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
