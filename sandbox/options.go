package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox/internal/testhook"
	"github.com/podsmith/podsmith/spec"
)

// Defaults of Options.
const (
	DefaultStateDir = "/var/lib/podsmith"
	DefaultRunDir   = "/run/podsmith"
	DefaultNetnsDir = "/run/netns"
)

const (
	defaultCgroupPrefix = "podsmith"
	defaultUndoTimeout  = 2 * time.Minute
)

// Options are a node's settings for building sandboxes. The zero value of
// every field means its documented default.
type Options struct {
	// StateDir holds the sandboxes' journals and name reservations, the
	// shared pause rootfs and the network's own state (StateDir/network).
	// Default /var/lib/podsmith. Builders (in one process or several)
	// that share a StateDir share one node's sandboxes.
	StateDir string
	// RunDir holds the bundles (config.json, resolv.conf, hostname, hosts,
	// the mount points). Default /run/podsmith. It need not be a tmpfs.
	RunDir string
	// NetnsDir is where network namespaces are pinned. Default /run/netns
	// (where `ip netns` looks); pins are named after the StateDir, so
	// Builders of different state dirs may share it.
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
	// PauseMode says which pods get a pause process; default PauseAlways.
	PauseMode PauseMode
	// UserNSHostRoot allows a pod's user namespace to map the node's root
	// (host ID 0); refused by default.
	UserNSHostRoot bool
	// ShmSize is a pod's /dev/shm size when it asks for none; default
	// mounts.DefaultShmSize (64 MiB). MaxShmSize caps what a pod may ask
	// for (with the annotation pod.ShmSizeAnnotation); default
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
	// RuntimeHandlers are runtimes a pod may ask for by name
	// (pod.Config.RuntimeHandler, CRI's runtime handler), "crun" say;
	// Runtime is the handler "".
	RuntimeHandlers map[string]Runtime
	// Host makes the namespaces and mounts and the pause rootfs; nil means
	// the real host (RealHost). sandboxtest provides a fake.
	Host Host

	// Logger receives debug records of each step; default: discard.
	// Errors are returned, not logged.
	Logger *slog.Logger
	// OnStep, if set, is called after each step of a Build with its
	// duration, for metrics.
	OnStep func(StepEvent)
	// UndoTimeout bounds a rollback or a Destroy, which run on a context
	// detached from the caller's (a cancelled request still cleans up).
	// Default 2 minutes.
	UndoTimeout time.Duration

	// hooks run before each step of a Build; an error from one fails the
	// Build at that step, testhook.ErrCrash abandons it as a crash would.
	// Only tests set them (testhook.SetBeforeStep: sandboxtest's FailAt).
	hooks []func(ctx context.Context, id, step string) error
}

func init() {
	testhook.SetBeforeStep = func(o any, fn func(ctx context.Context, id, step string) error) {
		opts := o.(*Options)
		opts.hooks = append(slices.Clip(opts.hooks), fn)
	}
}

// PauseMode says which pods get a pause process.
type PauseMode string

const (
	// PauseAlways: every pod gets a pause, which holds its IPC, UTS and
	// PID namespaces and joins its pinned netns (as containerd does).
	PauseAlways PauseMode = ""
	// PauseNever: no pod gets one. The Builder pins the pod's IPC and UTS
	// namespaces too (Sandbox.IPCNSPath, UTSNSPath), sets the pod's
	// hostname and sysctls in them, writes no config.json and starts
	// nothing, as CRI-O does with drop_infra_ctr. A pod that shares a PID
	// namespace among its containers (namespace_options.pid POD, the
	// CRI's default) needs a PID 1 to share and is refused.
	PauseNever PauseMode = "never"
	// PauseForSharedPID: a pause only for pods that share a PID namespace
	// among their containers; the others get none (CRI-O's choice).
	PauseForSharedPID PauseMode = "shared-pid"
)

// SeccompOptions choose the seccomp profiles behind a pod's settings.
type SeccompOptions struct {
	// RuntimeDefault is the profile of pods that ask for RuntimeDefault;
	// nil means spec.RuntimeDefaultProfile(). spec.PauseProfile() is a
	// tighter choice for the pause process. Every plan gets a copy.
	RuntimeDefault *specs.LinuxSeccomp
	// Unset is what a pod that says nothing about seccomp gets. The zero
	// value is RuntimeDefault (as kubelet's SeccompDefault); set it to
	// pod.ProfileUnconfined for CRI's historical default.
	Unset pod.ProfileType
}

// StepEvent reports one finished step of a Build.
type StepEvent struct {
	ID       string
	Step     Step
	Duration time.Duration
	Err      error
}

// withDefaults returns o with every unset field at its default, or a
// *ConfigError for settings that cannot work.
func (o Options) withDefaults() (Options, error) {
	o.StateDir = cmp.Or(o.StateDir, DefaultStateDir)
	o.RunDir = cmp.Or(o.RunDir, DefaultRunDir)
	o.NetnsDir = cmp.Or(o.NetnsDir, DefaultNetnsDir)
	var probs problems
	for name, dir := range map[string]string{"StateDir": o.StateDir, "RunDir": o.RunDir, "NetnsDir": o.NetnsDir} {
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			probs.addf("Options."+name, "%q is not a clean absolute path", dir)
		}
	}
	o.CgroupManager = cgroups.Manager(cmp.Or(string(o.CgroupManager), string(cgroups.Cgroupfs)))
	if _, err := cgroups.ParseManager(string(o.CgroupManager)); err != nil {
		probs.add("Options.CgroupManager", err.Error(), err)
	} else {
		o.CgroupParent = cmp.Or(o.CgroupParent, cgroups.DefaultParent(o.CgroupManager))
		o.CgroupPrefix = cmp.Or(o.CgroupPrefix, defaultCgroupPrefix)
		// An ID is 64 hex characters: check the parent and prefix with one.
		if _, err := cgroups.CgroupsPath(o.CgroupManager, o.CgroupParent, o.CgroupPrefix, strings.Repeat("0", 64)); err != nil {
			field := "Options.CgroupParent"
			if ne := (*cgroups.NameError)(nil); errors.As(err, &ne) {
				field = "Options.CgroupPrefix"
			}
			probs.add(field, err.Error(), err)
		}
	}
	o.MaxShmSize = cmp.Or(o.MaxShmSize, mounts.DefaultMaxShmSize)
	size, err := mounts.ShmSize(o.ShmSize, o.MaxShmSize)
	if err != nil {
		probs.add("Options.ShmSize", err.Error(), err)
	}
	o.ShmSize = size
	if o.Seccomp.RuntimeDefault == nil {
		o.Seccomp.RuntimeDefault = spec.RuntimeDefaultProfile()
	} else if err := spec.ValidateSeccompProfile(o.Seccomp.RuntimeDefault); err != nil {
		probs.add("Options.Seccomp.RuntimeDefault", err.Error(), err)
	}
	if o.Seccomp.Unset != pod.ProfileRuntimeDefault && o.Seccomp.Unset != pod.ProfileUnconfined {
		probs.addf("Options.Seccomp.Unset", "%s: must be RuntimeDefault or Unconfined", o.Seccomp.Unset)
	}
	for name, rt := range o.RuntimeHandlers {
		if name == "" || rt == nil {
			probs.addf(fmt.Sprintf("Options.RuntimeHandlers[%q]", name), "a handler needs a name and a runtime (Runtime is the handler \"\")")
		}
	}
	switch o.PauseMode {
	case PauseAlways, PauseNever, PauseForSharedPID:
	default:
		probs.addf("Options.PauseMode", "%q: must be \"\" (always), %q or %q", truncate(string(o.PauseMode)), PauseNever, PauseForSharedPID)
	}
	o.OCIVersion = cmp.Or(o.OCIVersion, spec.DefaultOCIVersion)
	o.HostResolvConf = cmp.Or(o.HostResolvConf, dns.DefaultHostResolvConf)
	o.Logger = cmp.Or(o.Logger, slog.New(slog.DiscardHandler))
	if o.UndoTimeout <= 0 {
		o.UndoTimeout = defaultUndoTimeout
	}
	if o.Host == nil {
		o.Host = RealHost()
	}
	return o, probs.err()
}
