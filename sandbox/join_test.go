package sandbox_test

import (
	"context"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
	"github.com/podsmith/podsmith/spec"
)

// A Builder without a pause pins the pod's IPC and UTS namespaces in the
// sandbox's dir, writes no config.json and starts nothing; Stop takes the
// pins with the netns; Destroy leaves nothing.
func TestNoPauseBuild(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{PauseMode: sandbox.PauseNever})
	before := tree(t, b, h)
	ctx := context.Background()
	sb, err := b.Build(ctx, noPauseConfig("web"))
	require.NoError(t, err)
	assert.True(t, sb.NoPause)
	assert.Nil(t, sb.Spec)
	assert.Zero(t, sb.PausePid)
	assert.Empty(t, sb.Files.Rootfs)
	assert.Equal(t, filepath.Join(sb.BundleDir, "ipcns"), sb.IPCNSPath)
	assert.Equal(t, filepath.Join(sb.BundleDir, "utsns"), sb.UTSNSPath)
	assert.NoFileExists(t, filepath.Join(sb.BundleDir, "config.json"))
	var steps []sandbox.Step
	for _, st := range sb.Timings {
		steps = append(steps, st.Step)
	}
	assert.Equal(t, stepsOf(true), steps)
	left, err := h.Left()
	require.NoError(t, err)
	assert.Equal(t, []string{"attachment " + sb.ID, "mount " + sb.Files.Shm, "netns " + sb.NetnsPath, "pin " + sb.IPCNSPath, "pin " + sb.UTSNSPath}, left)
	for _, op := range h.Ops() {
		assert.NotContains(t, []string{"create", "start", "bind"}, op.Kind, "no pause, no rootfs")
	}

	found, err := b.Find(sb.ID)
	require.NoError(t, err)
	assert.True(t, found.NoPause)
	assert.Equal(t, sandbox.StateBuilt, found.State)
	assert.Equal(t, sb.UTSNSPath, found.UTSNSPath)

	require.NoError(t, sb.Stop(ctx))
	left, err = h.Left()
	require.NoError(t, err)
	assert.Equal(t, []string{"mount " + sb.Files.Shm}, left, "Stop takes the pins with the netns")
	require.NoError(t, sb.Destroy(ctx))
	assert.Equal(t, before, tree(t, b, h))
}

// Which pods get a pause, and which are refused.
func TestPauseModes(t *testing.T) {
	shared, own := podConfig("shared"), noPauseConfig("own")
	host := podConfig("host")
	host.Hostname = ""
	host.Linux.Sysctls = nil
	host.Linux.SecurityContext = &pod.SecurityContext{NamespaceOptions: &pod.NamespaceOptions{Network: pod.NamespaceNode, Ipc: pod.NamespaceNode, Pid: pod.NamespaceNode}}
	for _, c := range []struct {
		mode            sandbox.PauseMode
		cfg             *pod.Config
		noPause, refuse bool
	}{
		{sandbox.PauseAlways, shared, false, false},
		{sandbox.PauseAlways, own, false, false},
		{sandbox.PauseNever, shared, false, true},
		{sandbox.PauseNever, own, true, false},
		{sandbox.PauseNever, host, true, false},
		{sandbox.PauseForSharedPID, shared, false, false},
		{sandbox.PauseForSharedPID, own, true, false},
	} {
		b, _ := sandboxtest.NewBuilder(t, sandbox.Options{PauseMode: c.mode})
		sb, err := b.Plan(c.cfg)
		if c.refuse {
			var ce *sandbox.ConfigError
			require.ErrorAs(t, err, &ce, "%s %s", c.mode, c.cfg.Metadata.Name)
			assert.Equal(t, "linux.security_context.namespace_options.pid", ce.Problems[0].Field)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, c.noPause, sb.NoPause, "%q %s", c.mode, c.cfg.Metadata.Name)
		assert.Equal(t, c.noPause, sb.Spec == nil)
		if c.cfg == host && c.noPause {
			assert.Empty(t, sb.IPCNSPath, "the node's IPC namespace")
			assert.Empty(t, sb.UTSNSPath, "the node's UTS namespace")
		}
	}
	_, err := sandbox.NewBuilder(sandbox.Options{PauseMode: "sometimes"})
	require.ErrorIs(t, err, sandbox.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "Options.PauseMode")
}

func applied(t *testing.T, opts []spec.Opt) *spec.Spec {
	t.Helper()
	s, err := spec.New(append([]spec.Opt{spec.WithSysctls(map[string]string{"net.ipv4.ping_group_range": "0 0", "kernel.shmmax": "1"})}, opts...)...)
	require.NoError(t, err)
	return s
}

func namespacesOf(s *spec.Spec) map[specs.LinuxNamespaceType]string {
	out := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		out[n.Type] = n.Path
	}
	return out
}

func TestContainerOpts(t *testing.T) {
	ctx := context.Background()
	for _, manager := range []cgroups.Manager{cgroups.Cgroupfs, cgroups.Systemd} {
		// With a pause: its namespaces, by /proc.
		b, _ := sandboxtest.NewBuilder(t, sandbox.Options{CgroupManager: manager})
		sb, err := b.Build(ctx, podConfig("web"))
		require.NoError(t, err)
		opts, err := sb.ContainerOpts(context.Background(), "app-1", pod.NamespacePod)
		require.NoError(t, err)
		s := applied(t, opts)
		proc := func(kind string) string { return "/proc/" + strconv.Itoa(sb.PausePid) + "/ns/" + kind }
		assert.Equal(t, map[specs.LinuxNamespaceType]string{
			specs.NetworkNamespace: sb.NetnsPath, specs.IPCNamespace: proc("ipc"), specs.UTSNamespace: proc("uts"),
			specs.PIDNamespace: proc("pid"), specs.MountNamespace: "",
		}, namespacesOf(s))
		assert.Empty(t, s.Hostname, "the pod's UTS namespace has it")
		want, err := cgroups.CgroupsPath(manager, sb.CgroupParent, "podsmith", "app-1")
		require.NoError(t, err)
		assert.Equal(t, want, s.Linux.CgroupsPath)
		assert.Nil(t, s.Linux.Sysctl, "no namespaced sysctls: they are the pod's")
		mounts := map[string]specs.Mount{}
		for _, m := range s.Mounts {
			mounts[m.Destination] = m
		}
		assert.Equal(t, sb.Files.Hostname, mounts["/etc/hostname"].Source)
		assert.Contains(t, mounts["/etc/hostname"].Options, "ro")
		assert.Equal(t, sb.Files.ResolvConf, mounts["/etc/resolv.conf"].Source)
		assert.Equal(t, sb.Files.Hosts, mounts["/etc/hosts"].Source)
		assert.Equal(t, sb.Files.Shm, mounts["/dev/shm"].Source)
		assert.Contains(t, mounts["/dev/shm"].Options, "rw")

		// A PID namespace of the container's own; the node's is refused.
		opts, err = sb.ContainerOpts(context.Background(), "app-2", pod.NamespaceContainer)
		require.NoError(t, err)
		assert.Equal(t, "", namespacesOf(applied(t, opts))[specs.PIDNamespace])
		for _, bad := range []pod.NamespaceMode{pod.NamespaceNode, pod.NamespaceTarget} {
			_, err = sb.ContainerOpts(context.Background(), "app-3", bad)
			require.ErrorIs(t, err, sandbox.ErrNotJoinable, bad)
		}
		_, err = sb.ContainerOpts(context.Background(), "a/b", pod.NamespacePod)
		var je *sandbox.JoinError
		require.ErrorAs(t, err, &je)
		assert.Contains(t, je.Error(), "container ID")

		// SELinux labels pass on.
		labelled := *sb
		labelled.ProcessLabel, labelled.MountLabel = "system_u:system_r:container_t:s0:c1,c2", "system_u:object_r:container_file_t:s0:c1,c2"
		opts, err = labelled.ContainerOpts(context.Background(), "app-4", pod.NamespacePod)
		require.NoError(t, err)
		s = applied(t, opts)
		assert.Equal(t, labelled.ProcessLabel, s.Process.SelinuxLabel)
		assert.Equal(t, labelled.MountLabel, s.Linux.MountLabel)

		// A pause that is not running any more (the runtime says so).
		require.NoError(t, b.Options().Runtime.Kill(ctx, sb.ID, syscall.SIGKILL))
		_, err = sb.ContainerOpts(ctx, "app-5", pod.NamespacePod)
		require.ErrorAs(t, err, &je)
		assert.Contains(t, je.Reason, "stopped")

		// Gone: stopped, destroyed, or only planned.
		require.NoError(t, sb.Destroy(ctx))
		_, err = sb.ContainerOpts(context.Background(), "late", pod.NamespacePod)
		require.ErrorIs(t, err, sandbox.ErrNotJoinable)
		planned, err := b.Plan(podConfig("plan"))
		require.NoError(t, err)
		_, err = planned.ContainerOpts(context.Background(), "app", pod.NamespacePod)
		require.ErrorIs(t, err, sandbox.ErrNotJoinable)
	}

	// Without a pause: the pins; no PID namespace to share.
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{PauseMode: sandbox.PauseNever})
	sb, err := b.Build(ctx, noPauseConfig("web"))
	require.NoError(t, err)
	opts, err := sb.ContainerOpts(context.Background(), "app", pod.NamespaceContainer)
	require.NoError(t, err)
	assert.Equal(t, map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: sb.NetnsPath, specs.IPCNamespace: sb.IPCNSPath, specs.UTSNamespace: sb.UTSNSPath,
		specs.PIDNamespace: "", specs.MountNamespace: "",
	}, namespacesOf(applied(t, opts)))
	_, err = sb.ContainerOpts(context.Background(), "app", pod.NamespacePod)
	var je *sandbox.JoinError
	require.ErrorAs(t, err, &je)
	assert.Contains(t, je.Reason, "no pause")
	require.NoError(t, sb.Destroy(ctx))

	// A host-network, host-IPC, host-PID pod: nothing to join but its
	// files; /dev/shm is the node's.
	host := podConfig("host")
	host.Hostname, host.Linux.Sysctls = "", nil
	host.Linux.SecurityContext = &pod.SecurityContext{NamespaceOptions: &pod.NamespaceOptions{Network: pod.NamespaceNode, Ipc: pod.NamespaceNode, Pid: pod.NamespaceNode}}
	sb, err = b.Build(ctx, host)
	require.NoError(t, err)
	opts, err = sb.ContainerOpts(context.Background(), "app", pod.NamespaceNode)
	require.NoError(t, err)
	s := applied(t, opts)
	assert.Equal(t, map[specs.LinuxNamespaceType]string{specs.MountNamespace: ""}, namespacesOf(s))
	for _, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			assert.Equal(t, "/dev/shm", m.Source)
		}
	}
	require.NoError(t, sb.Destroy(ctx))

	// A pod with a pause a Builder without a Runtime never started.
	b, _ = sandboxtest.NewBuilder(t, sandbox.Options{})
	b2, err := sandbox.NewBuilder(func() sandbox.Options { o := b.Options(); o.Runtime = nil; return o }())
	require.NoError(t, err)
	sb, err = b2.Build(ctx, podConfig("bundle-only"))
	require.NoError(t, err)
	_, err = sb.ContainerOpts(context.Background(), "app", pod.NamespacePod)
	require.ErrorIs(t, err, sandbox.ErrNotJoinable)
	require.NoError(t, sb.Destroy(ctx))
}
