package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"

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

// template is the pause defaults, encoded once: New decodes a fresh copy,
// which is cheaper and safer than building the generator's defaults (with
// their seccomp profile) for every sandbox.
var template = sync.OnceValues(func() ([]byte, error) {
	g, err := generate.New("linux")
	if err != nil {
		return nil, err
	}
	s := g.Config
	s.Version = DefaultOCIVersion
	s.Hostname = ""
	s.Root = &specs.Root{Path: "rootfs", Readonly: true}
	p := s.Process
	p.Terminal = false
	p.Args = []string{"/pause"}
	p.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	p.User = specs.User{UID: PauseUID, GID: PauseGID}
	p.NoNewPrivileges = true
	oom := DefaultOOMScoreAdj
	p.OOMScoreAdj = &oom
	p.Capabilities = capabilitySet(DefaultCapabilities)
	// The pause spec gets its /dev/shm from the sandbox (a bind of the
	// sandbox's tmpfs or the host's), never a tmpfs of the runtime's.
	mounts := s.Mounts[:0]
	for _, m := range s.Mounts {
		if m.Destination != "/dev/shm" {
			mounts = append(mounts, m)
		}
	}
	s.Mounts = mounts
	s.Linux.Seccomp = nil // chosen by an option: RuntimeDefault, pause-only, ...
	s.Linux.MaskedPaths = defaultMaskedPaths
	s.Linux.ReadonlyPaths = defaultReadonlyPaths
	shares := uint64(2) // the least CPU weight, as containerd gives the pause
	s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares}
	return json.Marshal(s)
})

// New returns the pause defaults edited by opts.
func New(opts ...Opt) (*Spec, error) {
	b, err := template()
	if err != nil {
		return nil, fmt.Errorf("spec: defaults: %w", err)
	}
	s := new(Spec)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("spec: defaults: %w", err)
	}
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
