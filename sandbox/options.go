package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/spec"
)

// Defaults of Options.
const (
	DefaultStateDir     = "/var/lib/podsmith"
	DefaultRunDir       = "/run/podsmith"
	DefaultNetnsDir     = "/run/netns"
	DefaultCgroupPrefix = "podsmith"
	DefaultUndoTimeout  = 2 * time.Minute
)

// Options are a node's settings for building sandboxes. The zero value of
// every field means its documented default.
type Options struct {
	// StateDir holds what must survive a reboot: the journals of attached
	// sandboxes, their name reservations and the shared pause rootfs.
	// Default /var/lib/podsmith. Builders (in one process or several)
	// that share a StateDir share one node's sandboxes, and must share
	// their RunDir too.
	StateDir string
	// RunDir holds the bundles (config.json, resolv.conf, hostname, hosts,
	// the shm mount point) and what a reboot may forget (journals and
	// names of sandboxes not yet attached to a network); a tmpfs is best.
	// Default /run/podsmith. A RunDir and a StateDir belong to each other
	// (each holds a file naming the other): a Builder refuses, with
	// ErrInvalidConfig, a RunDir of another StateDir or a StateDir in use
	// with another RunDir, as Recover would take the other's sandboxes for
	// orphans of its own. A StateDir may move to a new RunDir once the old
	// one is gone (after a reboot, say).
	RunDir string
	// NetnsDir is where network namespaces are pinned. Default /run/netns
	// (where `ip netns` looks).
	NetnsDir string

	// CgroupManager is the runtime's cgroup manager. Default cgroupfs.
	CgroupManager cgroups.Manager
	// CgroupParent is the parent of pods that name none. Default
	// cgroups.DefaultParent(CgroupManager).
	CgroupParent string
	// CgroupPrefix names the pause's cgroup ("<prefix>-<id>"). Default
	// "podsmith".
	CgroupPrefix string

	// Pause chooses the pause binary (default: catatonit found on PATH).
	Pause spec.PauseOptions
	// ShmSize is a pod's /dev/shm size when it asks for none; default
	// mounts.DefaultShmSize (64 MiB). MaxShmSize caps what a pod may ask
	// for (with the annotation ShmSizeAnnotation); default
	// mounts.DefaultMaxShmSize.
	ShmSize, MaxShmSize int64
	// DefaultSysctls are set in every pod; a pod's own sysctls override
	// them. They are validated like a pod's.
	DefaultSysctls map[string]string
	// Seccomp chooses the profiles behind the pod's seccomp settings.
	Seccomp SeccompOptions
	// SELinux labels the pause process and the sandbox's files when the
	// host has SELinux enabled. Off by default.
	SELinux bool
	// OOMPolicy says how the pause's OOM score adjustment (-998) is
	// restricted; default spec.OOMAuto.
	OOMPolicy spec.OOMPolicy
	// OCIVersion is the spec's ociVersion; default spec.DefaultOCIVersion.
	OCIVersion string
	// HostResolvConf is the node's resolv.conf, used for pods without a
	// DNS config; default /etc/resolv.conf.
	HostResolvConf string
	// NodeHostname returns the node's hostname (for host-network pods);
	// default os.Hostname.
	NodeHostname func() (string, error)

	// Network attaches pods to networks (netns/cni provides one). Nil
	// means loopback only.
	Network Network
	// Runtime runs the pause container (package oci drives runc and
	// crun). Nil: Build returns a ready bundle and starts nothing.
	Runtime Runtime
	// NetNS, Mounter and Rootfs are the host-facing seams; nil means the
	// real implementations (the netns, mounts and spec packages).
	// sandboxtest provides fakes.
	NetNS   NetNSManager
	Mounter Mounter
	Rootfs  RootfsProvider

	// Logger receives debug records of each step; default: discard.
	// Errors are returned, not logged.
	Logger *slog.Logger
	// OnStep, if set, is called after each step of a Build with its
	// duration, for metrics.
	OnStep func(StepEvent)
	// BeforeStep, if set, runs before each step of a Build; an error from
	// it fails the Build at that step, which is then rolled back like any
	// failure. Meant for tests: sandboxtest injects failures with it.
	BeforeStep func(ctx context.Context, id string, step Step) error
	// UndoTimeout bounds a rollback or a Destroy, which run on a context
	// detached from the caller's (a cancelled request still cleans up).
	// Default 2 minutes.
	UndoTimeout time.Duration
}

// SeccompOptions choose the seccomp profiles behind a pod's settings.
type SeccompOptions struct {
	// RuntimeDefault is the profile of pods that ask for RuntimeDefault;
	// nil means spec.RuntimeDefaultProfile(). spec.PauseProfile() is a
	// tighter choice for the pause process.
	RuntimeDefault *specs.LinuxSeccomp
	// Unset is what a pod that says nothing about seccomp gets. The zero
	// value is RuntimeDefault (as kubelet's SeccompDefault); set it to
	// ProfileUnconfined for CRI's historical default.
	Unset ProfileType
}

// StepEvent reports one finished step of a Build.
type StepEvent struct {
	ID       string
	Step     Step
	Duration time.Duration
	Err      error
}

// withDefaults returns o with every unset field at its default, or an error
// for settings that cannot work.
func (o Options) withDefaults() (Options, error) {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.RunDir == "" {
		o.RunDir = DefaultRunDir
	}
	if o.NetnsDir == "" {
		o.NetnsDir = DefaultNetnsDir
	}
	for name, dir := range map[string]string{"StateDir": o.StateDir, "RunDir": o.RunDir, "NetnsDir": o.NetnsDir} {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			return o, optionError(name, fmt.Sprintf("%q is not a clean absolute path", dir))
		}
	}
	if o.CgroupManager == "" {
		o.CgroupManager = cgroups.Cgroupfs
	}
	if _, err := cgroups.ParseManager(string(o.CgroupManager)); err != nil {
		return o, &ConfigError{Problems: []*Problem{{Field: "Options.CgroupManager", Reason: err.Error(), Err: err}}}
	}
	if o.CgroupParent == "" {
		o.CgroupParent = cgroups.DefaultParent(o.CgroupManager)
	}
	if err := cgroups.ValidateParent(o.CgroupManager, o.CgroupParent); err != nil {
		return o, &ConfigError{Problems: []*Problem{{Field: "Options.CgroupParent", Reason: err.Error(), Err: err}}}
	}
	if o.CgroupPrefix == "" {
		o.CgroupPrefix = DefaultCgroupPrefix
	}
	// An ID is 64 hex characters: check the prefix with one.
	if _, err := cgroups.CgroupsPath(o.CgroupManager, o.CgroupParent, o.CgroupPrefix, strings.Repeat("0", 64)); err != nil {
		return o, &ConfigError{Problems: []*Problem{{Field: "Options.CgroupPrefix", Reason: err.Error(), Err: err}}}
	}
	if o.MaxShmSize == 0 {
		o.MaxShmSize = mounts.DefaultMaxShmSize
	}
	size, err := mounts.ShmSize(o.ShmSize, o.MaxShmSize)
	if err != nil {
		return o, &ConfigError{Problems: []*Problem{{Field: "Options.ShmSize", Reason: err.Error(), Err: err}}}
	}
	o.ShmSize = size
	if o.Seccomp.RuntimeDefault == nil {
		o.Seccomp.RuntimeDefault = spec.RuntimeDefaultProfile()
	} else if err := spec.ValidateSeccompProfile(o.Seccomp.RuntimeDefault); err != nil {
		return o, &ConfigError{Problems: []*Problem{{Field: "Options.Seccomp.RuntimeDefault", Reason: err.Error(), Err: err}}}
	}
	if o.Seccomp.Unset != ProfileRuntimeDefault && o.Seccomp.Unset != ProfileUnconfined {
		return o, optionError("Seccomp.Unset", fmt.Sprintf("%s: must be RuntimeDefault or Unconfined", o.Seccomp.Unset))
	}
	if o.OCIVersion == "" {
		o.OCIVersion = spec.DefaultOCIVersion
	}
	if o.HostResolvConf == "" {
		o.HostResolvConf = dns.DefaultHostResolvConf
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.UndoTimeout <= 0 {
		o.UndoTimeout = DefaultUndoTimeout
	}
	if o.NetNS == nil {
		o.NetNS = hostNetNS{}
	}
	if o.Mounter == nil {
		o.Mounter = hostMounter{}
	}
	if o.Rootfs == nil {
		o.Rootfs = hostRootfs{}
	}
	return o, nil
}

func optionError(field, reason string) error {
	return &ConfigError{Problems: []*Problem{{Field: "Options." + field, Reason: reason}}}
}
