package spec

import (
	"errors"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/platform"
)

// Spec is an OCI runtime spec.
type Spec = specs.Spec

// Opt edits a spec. Options are applied in order; one that refuses its
// input returns an error and the spec must not be used.
type Opt func(*Spec) error

// Compose returns one Opt that applies opts in order and stops at the first
// error.
func Compose(opts ...Opt) Opt {
	return func(s *Spec) error {
		for _, o := range opts {
			if err := o(s); err != nil {
				return err
			}
		}
		return nil
	}
}

// ErrNotSupported is returned on systems other than Linux by the functions
// that read the host.
var ErrNotSupported = platform.ErrNotSupported

// ErrInvalid is matched (errors.Is) by every error this package returns for
// input it refuses.
var ErrInvalid = errors.New("spec: invalid")

// DefaultOCIVersion is the ociVersion written into specs: the lowest
// version covering the features of the pause spec. crun 1.8.1 refuses the
// runtime-spec library's own "1.2.1".
const DefaultOCIVersion = "1.0.2"

// Pause process defaults.
const (
	// DefaultOOMScoreAdj keeps the pause process alive longer than the
	// pod's containers under memory pressure (as CRI-O and kubelet do).
	DefaultOOMScoreAdj = -998
	// PauseUID and PauseGID are the user of the pause process (the
	// "nobody"-like 65535 of the Kubernetes pause image) unless the pod
	// asks for run_as_user/run_as_group.
	PauseUID = 65535
	PauseGID = 65535
)

// DefaultCapabilities is the capability set of an unprivileged pause
// process: runtime-tools' (and Docker's) default set, as bounding,
// effective and permitted capabilities; no ambient or inheritable ones.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Paths masked and made read-only in an unprivileged pause container (the
// set containerd and CRI-O use).
var (
	defaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// base returns a fresh copy of the pause defaults: runtime-tools' generate
// defaults for Linux (process environment, cwd, rlimits, mounts, device
// cgroup, namespaces), tightened for the pause process. It is written out
// rather than derived from a generate.Generator on each call, which costs
// a seccomp profile per sandbox; a test checks it against generate's.
func base() *Spec {
	oom := DefaultOOMScoreAdj
	shares := uint64(2) // the least CPU weight, as containerd gives the pause
	return &Spec{
		Version: DefaultOCIVersion,
		Root:    &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			User:            specs.User{UID: PauseUID, GID: PauseGID},
			Args:            []string{"/pause"},
			Env:             []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:             "/",
			Capabilities:    capabilitySet(DefaultCapabilities),
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
			OOMScoreAdj:     &oom,
		},
		// No /dev/shm of the runtime's: the sandbox binds its own tmpfs or
		// the host's.
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				CPU:     &specs.LinuxCPU{Shares: &shares},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths:   slices.Clone(defaultMaskedPaths),
			ReadonlyPaths: slices.Clone(defaultReadonlyPaths),
		},
	}
}

// New returns the pause defaults edited by opts.
func New(opts ...Opt) (*Spec, error) {
	s := base()
	if err := Compose(opts...)(s); err != nil {
		return nil, err
	}
	return s, nil
}

func capabilitySet(caps []string) *specs.LinuxCapabilities {
	return &specs.LinuxCapabilities{
		Bounding:  append([]string(nil), caps...),
		Effective: append([]string(nil), caps...),
		Permitted: append([]string(nil), caps...),
	}
}
