package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// OptionError reports an option that refused its input.
type OptionError struct {
	Option string // the option, e.g. "WithHostname"
	Reason string
}

func (e *OptionError) Error() string { return fmt.Sprintf("spec: %s: %s", e.Option, e.Reason) }

// Is makes an OptionError match ErrInvalid.
func (e *OptionError) Is(target error) bool { return target == ErrInvalid }

func ensureProcess(s *Spec) *specs.Process {
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	return s.Process
}

func ensureLinux(s *Spec) *specs.Linux {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return s.Linux
}

// WithArgs sets the pause process's command line.
func WithArgs(args ...string) Opt {
	return func(s *Spec) error {
		if len(args) == 0 || args[0] == "" {
			return &OptionError{Option: "WithArgs", Reason: "no command"}
		}
		ensureProcess(s).Args = slices.Clone(args)
		return nil
	}
}

// WithEnv sets environment variables ("KEY=value"), replacing any existing
// value of the same key.
func WithEnv(env ...string) Opt {
	return func(s *Spec) error {
		p := ensureProcess(s)
		for _, kv := range env {
			key, _, ok := strings.Cut(kv, "=")
			if !ok || key == "" || strings.ContainsAny(kv, "\x00") {
				return &OptionError{Option: "WithEnv", Reason: fmt.Sprintf("%q is not KEY=value", kv)}
			}
			p.Env = slices.DeleteFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, key+"=") })
			p.Env = append(p.Env, kv)
		}
		return nil
	}
}

// WithHostname sets the UTS hostname. It needs a UTS namespace: call it
// after any option that removes one, or it fails.
func WithHostname(name string) Opt {
	return func(s *Spec) error {
		if name != "" && !hasNamespace(s, specs.UTSNamespace) {
			return &OptionError{Option: "WithHostname", Reason: "the spec has no UTS namespace (host network): the hostname is the node's"}
		}
		s.Hostname = name
		return nil
	}
}

// WithRoot sets the root file system path (absolute, or relative to the
// bundle) and whether it is read-only.
func WithRoot(path string, readonly bool) Opt {
	return func(s *Spec) error {
		if path == "" {
			return &OptionError{Option: "WithRoot", Reason: "empty path"}
		}
		s.Root = &specs.Root{Path: path, Readonly: readonly}
		return nil
	}
}

// WithUser sets the pause process's user, group and supplementary groups.
func WithUser(uid, gid uint32, additionalGids ...uint32) Opt {
	return func(s *Spec) error {
		ensureProcess(s).User = specs.User{UID: uid, GID: gid, AdditionalGids: slices.Clone(additionalGids)}
		return nil
	}
}

func hasNamespace(s *Spec, typ specs.LinuxNamespaceType) bool {
	if s.Linux == nil {
		return false
	}
	return slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
}

// WithNamespace puts the process in a namespace of typ: a new one when path
// is "", else the one at path (a netns pin, say). It replaces any entry of
// the same type.
func WithNamespace(typ specs.LinuxNamespaceType, path string) Opt {
	return func(s *Spec) error {
		l := ensureLinux(s)
		i := slices.IndexFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
		ns := specs.LinuxNamespace{Type: typ, Path: path}
		if i < 0 {
			l.Namespaces = append(l.Namespaces, ns)
		} else {
			l.Namespaces[i] = ns
		}
		return nil
	}
}

// WithoutNamespace removes the namespace of typ: the process shares the
// host's.
func WithoutNamespace(typ specs.LinuxNamespaceType) Opt {
	return func(s *Spec) error {
		l := ensureLinux(s)
		l.Namespaces = slices.DeleteFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
		return nil
	}
}

// WithHostNetwork shares the host's network namespace and, as Kubernetes
// does for host-network pods, its UTS namespace: the hostname is the
// node's, so the spec's is cleared.
func WithHostNetwork() Opt {
	return Compose(
		WithoutNamespace(specs.NetworkNamespace),
		WithoutNamespace(specs.UTSNamespace),
		func(s *Spec) error { s.Hostname = ""; return nil },
	)
}

// WithHostPID shares the host's PID namespace.
func WithHostPID() Opt { return WithoutNamespace(specs.PIDNamespace) }

// WithHostIPC shares the host's IPC namespace. The caller binds the host's
// /dev/shm (WithMounts) as well.
func WithHostIPC() Opt { return WithoutNamespace(specs.IPCNamespace) }

// WithMounts adds mounts, each replacing any mount with the same
// destination.
func WithMounts(mounts ...specs.Mount) Opt {
	return func(s *Spec) error {
		for _, m := range mounts {
			if !strings.HasPrefix(m.Destination, "/") {
				return &OptionError{Option: "WithMounts", Reason: fmt.Sprintf("destination %q is not absolute", m.Destination)}
			}
			m.Options = slices.Clone(m.Options)
			if i := slices.IndexFunc(s.Mounts, func(x specs.Mount) bool { return x.Destination == m.Destination }); i >= 0 {
				s.Mounts[i] = m
			} else {
				s.Mounts = append(s.Mounts, m)
			}
		}
		return nil
	}
}

// WithCgroupsPath sets linux.cgroupsPath (see the cgroups package for the
// string each cgroup manager expects).
func WithCgroupsPath(path string) Opt {
	return func(s *Spec) error {
		ensureLinux(s).CgroupsPath = path
		return nil
	}
}

// WithOOMScoreAdj sets the process's OOM score adjustment (-1000..1000).
// See EffectiveOOMScoreAdj for what a process without CAP_SYS_RESOURCE can
// set.
func WithOOMScoreAdj(score int) Opt {
	return func(s *Spec) error {
		if score < -1000 || score > 1000 {
			return &OptionError{Option: "WithOOMScoreAdj", Reason: fmt.Sprintf("%d is outside -1000..1000", score)}
		}
		ensureProcess(s).OOMScoreAdj = &score
		return nil
	}
}

// WithNoNewPrivileges sets no_new_privileges.
func WithNoNewPrivileges(on bool) Opt {
	return func(s *Spec) error {
		ensureProcess(s).NoNewPrivileges = on
		return nil
	}
}

// WithCapabilities sets the bounding, effective and permitted capabilities
// ("CAP_…" names); ambient and inheritable sets are cleared.
func WithCapabilities(caps ...string) Opt {
	return func(s *Spec) error {
		for _, c := range caps {
			if !strings.HasPrefix(c, "CAP_") || strings.ContainsAny(c, " \t\n\x00") {
				return &OptionError{Option: "WithCapabilities", Reason: fmt.Sprintf("%q is not a capability name", c)}
			}
		}
		ensureProcess(s).Capabilities = capabilitySet(caps)
		return nil
	}
}

// WithRlimits sets rlimits, each replacing a limit of the same type. A
// process without CAP_SYS_RESOURCE cannot raise a hard limit above its own.
func WithRlimits(limits ...specs.POSIXRlimit) Opt {
	return func(s *Spec) error {
		p := ensureProcess(s)
		for _, l := range limits {
			if !strings.HasPrefix(l.Type, "RLIMIT_") {
				return &OptionError{Option: "WithRlimits", Reason: fmt.Sprintf("%q is not an rlimit type", l.Type)}
			}
			if l.Soft > l.Hard {
				return &OptionError{Option: "WithRlimits", Reason: fmt.Sprintf("%s: soft limit %d above hard limit %d", l.Type, l.Soft, l.Hard)}
			}
			if i := slices.IndexFunc(p.Rlimits, func(x specs.POSIXRlimit) bool { return x.Type == l.Type }); i >= 0 {
				p.Rlimits[i] = l
			} else {
				p.Rlimits = append(p.Rlimits, l)
			}
		}
		return nil
	}
}

// WithSELinuxLabels sets the process label and the mount label ("" clears
// them, as for privileged and host-PID/IPC pods).
func WithSELinuxLabels(process, mount string) Opt {
	return func(s *Spec) error {
		ensureProcess(s).SelinuxLabel = process
		ensureLinux(s).MountLabel = mount
		return nil
	}
}

// WithSeccomp sets the seccomp profile; nil means none (unconfined). The
// profile is shared, not copied: do not modify it afterwards.
func WithSeccomp(profile *specs.LinuxSeccomp) Opt {
	return func(s *Spec) error {
		ensureLinux(s).Seccomp = profile
		return nil
	}
}

// WithPrivileged gives the pause process what a privileged pod's infra
// container gets: every capability in caps (see HostCapabilities), no masked
// or read-only paths, a writable /sys, no seccomp profile and no SELinux
// process label.
func WithPrivileged(caps []string) Opt {
	return Compose(
		WithCapabilities(caps...),
		WithSeccomp(nil),
		func(s *Spec) error {
			l := ensureLinux(s)
			l.MaskedPaths, l.ReadonlyPaths = nil, nil
			ensureProcess(s).SelinuxLabel = ""
			for i, m := range s.Mounts {
				if m.Destination == "/sys" {
					s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
				}
			}
			return nil
		},
	)
}

// WithAnnotations adds annotations, overwriting keys that exist.
func WithAnnotations(annotations map[string]string) Opt {
	return func(s *Spec) error {
		if s.Annotations == nil {
			s.Annotations = make(map[string]string, len(annotations))
		}
		maps.Copy(s.Annotations, annotations)
		return nil
	}
}

// WithOCIVersion sets ociVersion (DefaultOCIVersion unless set).
func WithOCIVersion(v string) Opt {
	return func(s *Spec) error {
		if v == "" {
			return &OptionError{Option: "WithOCIVersion", Reason: "empty version"}
		}
		s.Version = v
		return nil
	}
}

// WithUserNamespace puts the process in the user namespace pinned at path
// (a new one when path is ""), with its ID mappings; runtimes want the
// mappings even for a namespace they join.
func WithUserNamespace(path string, uids, gids []specs.LinuxIDMapping) Opt {
	return func(s *Spec) error {
		if len(uids) == 0 || len(gids) == 0 {
			return &OptionError{Option: "WithUserNamespace", Reason: "a user namespace needs UID and GID mappings"}
		}
		if err := WithNamespace(specs.UserNamespace, path)(s); err != nil {
			return err
		}
		l := ensureLinux(s)
		l.UIDMappings, l.GIDMappings = slices.Clone(uids), slices.Clone(gids)
		return nil
	}
}
