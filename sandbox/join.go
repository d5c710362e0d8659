package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/spec"
)

// ErrNotJoinable is matched by a *JoinError: a container cannot join the
// sandbox as asked.
var ErrNotJoinable = errors.New("sandbox: a container cannot join the pod")

// JoinError says why ContainerOpts cannot make a container part of a
// sandbox.
type JoinError struct {
	ID     string // the sandbox's
	Reason string
}

func (e *JoinError) Error() string {
	return fmt.Sprintf("sandbox %s: a container cannot join: %s", shortID(e.ID), e.Reason)
}

// Is makes a JoinError match ErrNotJoinable.
func (e *JoinError) Is(target error) bool { return target == ErrNotJoinable }

// ContainerOpts returns the spec options that make an app container,
// named containerID, part of the sandbox, as containerd's
// WithPodNamespaces and CRI-O's container creation do. Apply them to the
// container's own spec, after the options that make it:
//
//   - its network, IPC and UTS namespaces are the pod's: the pins
//     (NetnsPath, IPCNSPath, UTSNSPath) or the pause's
//     (/proc/<PausePid>/ns/...), whichever the pod has; none of a
//     namespace the pod shares with the node (host network, host IPC);
//   - its PID namespace: the pause's when pid is POD, a new one when
//     CONTAINER, the node's when NODE; pid is the container's own mode
//     (pass the pod's, Config.Namespaces().Pid, when it has none);
//   - the pod's /etc/hostname, /etc/resolv.conf and /etc/hosts, bound
//     read-only, and its /dev/shm (the node's for a host-IPC pod);
//   - linux.cgroupsPath: the container's cgroup beside the pause's,
//     under the pod's cgroup parent, in the Builder's cgroup manager's
//     form;
//   - no namespaced sysctls: they are the pod's, set in its namespaces
//     already (a container's own would change them for the whole pod);
//   - the pod's SELinux process and mount labels, when it has them;
//   - the pod's user namespace (UserNSPath) and its mappings, when it has
//     one: the container's IDs are the pod's.
//
// For a pod with a pause, it asks the runtime (PauseState) that the pause
// still runs as the PID the Build recorded: a pause that died, its PID
// taken by another process, would hand out that process's namespaces (the
// runtimes check a process's start time). The pause may still die between
// this call and the container's create, as with containerd.
//
// Errors are *JoinError: a sandbox that is not built (stopped, destroyed,
// planned), a pause that is not running, a PID namespace the pod cannot
// give (POD without a pause, NODE in a pod that does not share the
// node's, TARGET), or a container ID that cannot name a cgroup.
func (s *Sandbox) ContainerOpts(ctx context.Context, containerID string, pid pod.NamespaceMode) ([]spec.Opt, error) {
	fail := func(format string, args ...any) ([]spec.Opt, error) {
		return nil, &JoinError{ID: s.ID, Reason: fmt.Sprintf(format, args...)}
	}
	if s.State != StateBuilt {
		return fail("it is %s, not built", s.State)
	}
	if s.b != nil {
		if _, err := os.Stat(s.b.journalPath(s.ID)); errors.Is(err, fs.ErrNotExist) {
			return fail("it was destroyed")
		}
	}
	ns := s.Config.Namespaces()
	var pausePID string
	if !s.NoPause {
		if s.PausePid <= 0 {
			return fail("its pause is not running (a Builder without a Runtime starts none: start it, then set PausePid)")
		}
		if s.b != nil && s.b.runtime(s.Config.RuntimeHandler) != nil {
			st, err := s.PauseState(ctx)
			if err != nil {
				return fail("its pause's state: %v", err)
			}
			if st.Status != specs.StateRunning || st.Pid != s.PausePid {
				return fail("its pause (PID %d) is %s as PID %d: its namespaces are gone", s.PausePid, st.Status, st.Pid)
			}
		}
		pausePID = strconv.Itoa(s.PausePid)
	}
	// The pod's namespace of a kind: its pin, or its pause's.
	podNS := func(typ specs.LinuxNamespaceType, pin, proc string) spec.Opt {
		if s.NoPause {
			return spec.WithNamespace(typ, pin)
		}
		return spec.WithNamespace(typ, "/proc/"+pausePID+"/ns/"+proc)
	}
	var opts []spec.Opt
	if ns.Network == pod.NamespaceNode {
		opts = append(opts, spec.WithHostNetwork()) // and the node's UTS namespace
	} else {
		opts = append(opts, spec.WithNamespace(specs.NetworkNamespace, s.NetnsPath), podNS(specs.UTSNamespace, s.UTSNSPath, "uts"),
			spec.WithHostname(""))
	}
	if ns.Ipc == pod.NamespaceNode {
		opts = append(opts, spec.WithHostIPC())
	} else {
		opts = append(opts, podNS(specs.IPCNamespace, s.IPCNSPath, "ipc"))
	}
	switch pid {
	case pod.NamespacePod:
		if s.NoPause {
			return fail("pid POD: the pod has no pause whose PID namespace to share")
		}
		if ns.Pid != pod.NamespacePod {
			return fail("pid POD: the pod's pause has a PID namespace of its own only when the pod's pid is POD, and it is %s", ns.Pid)
		}
		opts = append(opts, spec.WithNamespace(specs.PIDNamespace, "/proc/"+pausePID+"/ns/pid"))
	case pod.NamespaceContainer:
		opts = append(opts, spec.WithNamespace(specs.PIDNamespace, ""))
	case pod.NamespaceNode:
		if ns.Pid != pod.NamespaceNode {
			return fail("pid NODE: the pod does not share the node's PID namespace")
		}
		opts = append(opts, spec.WithHostPID())
	default:
		return fail("pid %s: join a container's PID namespace with spec.WithNamespace", pid)
	}
	if s.UserNSPath != "" {
		// The pod's user namespace, with its mappings (runtimes want them
		// for a namespace they join).
		u := ns.UsernsOptions
		if u == nil || len(u.Uids) != 1 || len(u.Gids) != 1 {
			return fail("its config lost its user namespace mappings")
		}
		opts = append(opts, spec.WithUserNamespace(s.UserNSPath, specMapping(u.Uids[0]), specMapping(u.Gids[0])))
	}
	opts = append(opts, spec.WithMounts(s.podMounts()...))
	if s.b != nil {
		o := s.b.opts
		path, err := cgroups.CgroupsPath(o.CgroupManager, s.CgroupParent, o.CgroupPrefix, containerID)
		if err != nil {
			return fail("container ID %q: %v", truncate(containerID), err)
		}
		opts = append(opts, spec.WithCgroupsPath(path))
	}
	opts = append(opts, withoutNamespacedSysctls)
	if s.ProcessLabel != "" || s.MountLabel != "" {
		opts = append(opts, spec.WithSELinuxLabels(s.ProcessLabel, s.MountLabel))
	}
	return opts, nil
}

// podMounts are the pod's files and /dev/shm, as its containers see them.
func (s *Sandbox) podMounts() []specs.Mount {
	ro := []string{"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"}
	return []specs.Mount{
		{Destination: "/etc/hostname", Type: "bind", Source: s.Files.Hostname, Options: ro},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: s.Files.ResolvConf, Options: ro},
		{Destination: "/etc/hosts", Type: "bind", Source: s.Files.Hosts, Options: ro},
		{Destination: "/dev/shm", Type: "bind", Source: s.Files.Shm, Options: []string{"rbind", "rprivate", "rw", "nosuid", "nodev", "noexec"}},
	}
}

// withoutNamespacedSysctls drops the sysctls of the pod's namespaces from a
// container's spec.
func withoutNamespacedSysctls(sp *spec.Spec) error {
	if sp.Linux == nil {
		return nil
	}
	for k := range sp.Linux.Sysctl {
		if spec.SysctlNamespace(spec.NormalizeSysctlName(k)) != "" {
			delete(sp.Linux.Sysctl, k)
		}
	}
	if len(sp.Linux.Sysctl) == 0 {
		sp.Linux.Sysctl = nil
	}
	return nil
}
