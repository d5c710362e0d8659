package cri

import (
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsmith/podsmith/pod"
)

// UnsupportedError says a request asks for something podsmith cannot give.
type UnsupportedError struct {
	Field  string // the field path, e.g. "linux.security_context.namespace_options.userns_options"
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("cri: %s: %s", e.Field, e.Reason)
}

// Config converts a RunPodSandboxRequest into the pod.Config a Builder
// builds, runtime handler included. It checks only what the conversion
// cannot carry (see the package doc); the Builder validates the rest.
func Config(req *runtime.RunPodSandboxRequest) (*pod.Config, error) {
	c := req.GetConfig()
	if c == nil {
		return nil, &UnsupportedError{Field: "config", Reason: "missing"}
	}
	if c.Windows != nil {
		return nil, &UnsupportedError{Field: "windows", Reason: "a Windows pod on a Linux node"}
	}
	cfg := &pod.Config{
		Hostname:       c.Hostname,
		LogDirectory:   c.LogDirectory,
		Labels:         maps.Clone(c.Labels),
		Annotations:    maps.Clone(c.Annotations),
		RuntimeHandler: req.RuntimeHandler,
	}
	if m := c.Metadata; m != nil {
		cfg.Metadata = pod.Metadata{Name: m.Name, UID: m.Uid, Namespace: m.Namespace, Attempt: m.Attempt}
	}
	if d := c.DnsConfig; d != nil {
		cfg.DNSConfig = &pod.DNSConfig{Servers: slices.Clone(d.Servers), Searches: slices.Clone(d.Searches), Options: slices.Clone(d.Options)}
	}
	for _, pm := range c.PortMappings {
		if pm != nil {
			cfg.PortMappings = append(cfg.PortMappings, pod.PortMapping{
				Protocol: pod.Protocol(pm.Protocol), ContainerPort: pm.ContainerPort, HostPort: pm.HostPort, HostIP: pm.HostIp,
			})
		}
	}
	if l := c.Linux; l != nil {
		cfg.Linux = &pod.LinuxConfig{
			CgroupParent: l.CgroupParent,
			Sysctls:      maps.Clone(l.Sysctls),
			Overhead:     resources(l.Overhead),
			Resources:    resources(l.Resources),
		}
		sc, err := security(l.SecurityContext)
		if err != nil {
			return nil, err
		}
		cfg.Linux.SecurityContext = sc
	}
	return cfg, nil
}

// security converts the pod's security context. Every field of it asks
// for something: one this module does not know is refused.
func security(s *runtime.LinuxSandboxSecurityContext) (*pod.SecurityContext, error) {
	if s == nil {
		return nil, nil
	}
	const f = "linux.security_context"
	if err := known(f, s); err != nil {
		return nil, err
	}
	sc := &pod.SecurityContext{
		ReadonlyRootfs:     s.ReadonlyRootfs, // the pause's rootfs is read-only anyway
		SupplementalGroups: slices.Clone(s.SupplementalGroups),
		Privileged:         s.Privileged,
		//lint:ignore SA1019 deprecated, but kubelet may still send it: honoured
		SeccompProfilePath: s.SeccompProfilePath,
	}
	// SupplementalGroupsPolicy: Merge adds the groups of the image's
	// /etc/group, Strict does not. The pause's rootfs has no /etc/group:
	// both give the same process, and either is honoured.
	if p := s.SupplementalGroupsPolicy; p != runtime.SupplementalGroupsPolicy_Merge && p != runtime.SupplementalGroupsPolicy_Strict {
		return nil, &UnsupportedError{Field: f + ".supplemental_groups_policy", Reason: fmt.Sprintf("%d is not Merge (0) or Strict (1)", p)}
	}
	if ns := s.NamespaceOptions; ns != nil {
		if err := known(f+".namespace_options", ns); err != nil {
			return nil, err
		}
		sc.NamespaceOptions = &pod.NamespaceOptions{
			Network: pod.NamespaceMode(ns.Network), Pid: pod.NamespaceMode(ns.Pid), Ipc: pod.NamespaceMode(ns.Ipc), TargetID: ns.TargetId,
		}
		// The user namespace passes through as asked: the Builder checks
		// it (one mapping each, ID 0 mapped, no host root, no node
		// namespaces) and names what it refuses by field path.
		if u := ns.UsernsOptions; u != nil {
			uf := f + ".namespace_options.userns_options"
			if err := known(uf, u); err != nil {
				return nil, err
			}
			out := &pod.UserNamespace{Mode: pod.NamespaceMode(u.Mode)}
			for _, m := range []struct {
				field string
				in    []*runtime.IDMapping
				out   *[]pod.IDMapping
			}{{uf + ".uids", u.Uids, &out.Uids}, {uf + ".gids", u.Gids, &out.Gids}} {
				for i, im := range m.in {
					if im == nil {
						return nil, &UnsupportedError{Field: fmt.Sprintf("%s[%d]", m.field, i), Reason: "null mapping"}
					}
					if err := known(fmt.Sprintf("%s[%d]", m.field, i), im); err != nil {
						return nil, err
					}
					*m.out = append(*m.out, pod.IDMapping{HostID: im.HostId, ContainerID: im.ContainerId, Length: im.Length})
				}
			}
			sc.NamespaceOptions.UsernsOptions = out
		}
	}
	if o := s.SelinuxOptions; o != nil {
		if err := known(f+".selinux_options", o); err != nil {
			return nil, err
		}
		sc.SelinuxOptions = &pod.SELinuxOptions{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
	}
	if v := s.RunAsUser; v != nil {
		sc.RunAsUser = &pod.Int64Value{Value: v.Value}
	}
	if v := s.RunAsGroup; v != nil {
		sc.RunAsGroup = &pod.Int64Value{Value: v.Value}
	}
	for _, p := range []struct {
		field string
		in    *runtime.SecurityProfile
		out   **pod.SecurityProfile
	}{{"seccomp", s.Seccomp, &sc.Seccomp}, {"apparmor", s.Apparmor, &sc.Apparmor}} {
		if p.in == nil {
			continue
		}
		if err := known(f+"."+p.field, p.in); err != nil {
			return nil, err
		}
		*p.out = &pod.SecurityProfile{ProfileType: pod.ProfileType(p.in.ProfileType), LocalhostRef: p.in.LocalhostRef}
	}
	return sc, nil
}

// known refuses a message with fields this module does not know.
func known(field string, m proto.Message) error {
	if len(m.ProtoReflect().GetUnknown()) > 0 {
		return &UnsupportedError{Field: field, Reason: "has a field this shim does not know (a newer CRI's): refused, as it may ask for a security setting podsmith cannot give"}
	}
	return nil
}

func resources(r *runtime.LinuxContainerResources) *pod.Resources {
	if r == nil {
		return nil
	}
	out := &pod.Resources{
		CPUPeriod:              r.CpuPeriod,
		CPUQuota:               r.CpuQuota,
		CPUShares:              r.CpuShares,
		MemoryLimitInBytes:     r.MemoryLimitInBytes,
		OomScoreAdj:            r.OomScoreAdj,
		CpusetCpus:             r.CpusetCpus,
		CpusetMems:             r.CpusetMems,
		Unified:                maps.Clone(r.Unified),
		MemorySwapLimitInBytes: r.MemorySwapLimitInBytes,
	}
	for _, h := range r.HugepageLimits {
		if h != nil {
			out.HugepageLimits = append(out.HugepageLimits, pod.HugepageLimit{PageSize: h.PageSize, Limit: h.Limit})
		}
	}
	return out
}
