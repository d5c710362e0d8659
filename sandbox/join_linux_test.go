package sandbox_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/oci"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

// joinFixture is a real-host Builder with a runtime and a CNI network, and
// a busybox rootfs for app containers.
type joinFixture struct {
	b      *sandbox.Builder
	rt     oci.Options
	net    *testutil.CNINetwork
	lc     *testutil.LeakCheck
	root   string
	rootfs string
}

func newJoinFixture(t *testing.T, runtime string, mode sandbox.PauseMode) *joinFixture {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	rootfs := testutil.BusyboxRootfs(t, t.TempDir())
	ro := testutil.RuntimeOptions(t, runtime)
	rt, err := oci.New(ro)
	require.NoError(t, err)
	opts := realOptions(t, root, sandbox.Options{Runtime: rt, PauseMode: mode, CgroupParent: testCgroupParent(t)})
	b0, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	_, err = b0.Prepare()
	require.NoError(t, err)
	lc := testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root, rt.Root()}, Skeleton: []string{rt.Root()},
		NetnsDir: opts.NetnsDir, CgroupParent: opts.CgroupParent})
	n := testutil.NewCNINetwork(t, testutil.CNINetworkOptions{})
	network, err := cni.New(cni.Options{ConfDir: n.ConfDir, BinDirs: n.BinDirs, CacheDir: n.CacheDir})
	require.NoError(t, err)
	opts.Network = network
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	return &joinFixture{b: b, rt: ro, net: n, lc: lc, root: root, rootfs: rootfs}
}

// run runs script in a busybox container of the pod (runtime run, in the
// foreground) and returns its output; the container is gone afterwards.
func (f *joinFixture) run(t *testing.T, sb *sandbox.Sandbox, pid pod.NamespaceMode, script string) string {
	t.Helper()
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	id := "app-" + hex.EncodeToString(raw[:])
	opts, err := sb.ContainerOpts(context.Background(), id, pid)
	require.NoError(t, err)
	s, err := spec.New(append([]spec.Opt{spec.WithRoot(f.rootfs, true), spec.WithArgs("/bin/sh", "-c", script),
		spec.WithUser(0, 0), spec.WithOOMScoreAdj(0)}, opts...)...)
	require.NoError(t, err)
	bundle := filepath.Join(f.root, id)
	require.NoError(t, os.Mkdir(bundle, 0o700))
	defer os.RemoveAll(bundle)
	require.NoError(t, spec.Save(bundle, s, spec.SaveOptions{}))
	cmd := exec.Command(f.rt.Runtime, append(append([]string{}, f.rt.GlobalArgs...), "--root", f.rt.Root, "run", "--bundle", bundle, id)...)
	var stderr strings.Builder
	// Not the node's /dev/null (exec's default): crun before 1.23 chowns a
	// container's standard streams to its user namespace's root.
	cmd.Stdin, cmd.Stderr = strings.NewReader(""), &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s", stderr.String())
	return string(out)
}

// joinPod is a pod config for the join tests: pod namespaces (with a
// PID namespace per container when the Builder has no pause), or the
// node's network, or the node's IPC and PID namespaces.
func joinPod(name, nsMode string, noPause bool) *pod.Config {
	cfg := &pod.Config{
		Metadata: pod.Metadata{Name: name, Namespace: "join", UID: name + "-uid"},
		Hostname: name,
		Linux:    &pod.LinuxConfig{Sysctls: map[string]string{"kernel.shmmni": "1234"}},
	}
	ns := &pod.NamespaceOptions{}
	if noPause {
		ns.Pid = pod.NamespaceContainer
	}
	switch nsMode {
	case "host-network":
		ns.Network, cfg.Hostname = pod.NamespaceNode, "" // the node's
	case "host-ipc-pid":
		ns.Ipc, ns.Pid = pod.NamespaceNode, pod.NamespaceNode
		cfg.Linux.Sysctls = nil
	}
	cfg.Linux.SecurityContext = &pod.SecurityContext{NamespaceOptions: ns}
	return cfg
}

// TestContainersJoinThePod runs busybox containers in pods of each pause
// mode and namespace mode, with runc and crun, and checks from inside what
// they share and what they do not.
func TestContainersJoinThePod(t *testing.T) {
	testutil.RequireRoot(t)
	for _, runtime := range []string{"runc", "crun"} {
		for _, mode := range crashModes {
			for _, nsMode := range []string{"pod", "host-network", "host-ipc-pid"} {
				t.Run(runtime+"/"+mode.name+"/"+nsMode, func(t *testing.T) {
					pm := sandbox.PauseAlways
					if mode.noPause {
						pm = sandbox.PauseNever
					}
					f := newJoinFixture(t, runtime, pm)
					joinAndCheck(t, f, mode.noPause, nsMode)
				})
			}
		}
	}
}

func joinAndCheck(t *testing.T, f *joinFixture, noPause bool, nsMode string) {
	ctx := context.Background()
	build := func(name string) *sandbox.Sandbox {
		sb, err := f.b.Build(ctx, joinPod(name, nsMode, noPause))
		require.NoError(t, err)
		t.Cleanup(func() { _ = sb.Destroy(ctx) })
		if sb.PausePid > 0 {
			f.lc.TrackProcess(sb.PausePid)
		}
		assert.Equal(t, noPause, sb.NoPause)
		return sb
	}
	a, b := build("pod-a"), build("pod-b")
	for _, p := range f.net.Ports() {
		f.lc.TrackLink(p)
	}
	pid := a.Config.Namespaces().Pid
	nodeHost, err := os.Hostname()
	require.NoError(t, err)
	resolv, err := os.ReadFile(a.Files.ResolvConf)
	require.NoError(t, err)

	out := f.run(t, a, pid, `hostname; echo ---; cat /etc/resolv.conf; echo ---; ip -4 -o addr show eth0 2>&1; echo ---; `+
		`cat /proc/sys/kernel/shmmni; echo ---; echo $$; cat /proc/1/comm`)
	parts := strings.Split(out, "---\n")
	require.Len(t, parts, 5, out)
	wantHost := "pod-a"
	if nsMode == "host-network" {
		wantHost = nodeHost
	}
	assert.Equal(t, wantHost+"\n", parts[0], "hostname")
	assert.Equal(t, string(resolv), parts[1], "the pod's resolv.conf")
	if nsMode == "host-network" {
		assert.Empty(t, a.IPs, "a host-network pod has no address of its own")
	} else {
		require.Len(t, a.IPs, 1)
		assert.Contains(t, parts[2], " inet "+a.IPs[0].String()+"/24", "eth0 has the pod's IP")
	}
	hostShmmni, err := os.ReadFile("/proc/sys/kernel/shmmni")
	require.NoError(t, err)
	if nsMode == "host-ipc-pid" {
		assert.Equal(t, string(hostShmmni), parts[3], "the node's IPC namespace")
	} else {
		assert.Equal(t, "1234\n", parts[3], "the pod's IPC sysctl")
	}
	pidLines := strings.Fields(parts[4])
	require.Len(t, pidLines, 2, parts[4])
	switch pid {
	case pod.NamespacePod:
		assert.NotEqual(t, "1", pidLines[0], "the pause is PID 1 of the shared namespace")
		assert.Equal(t, filepath.Base(spec.PauseBinaryName), pidLines[1])
	case pod.NamespaceContainer:
		assert.Equal(t, "1", pidLines[0], "a PID namespace of the container's own")
	case pod.NamespaceNode:
		assert.NotEqual(t, "1", pidLines[0])
		assert.NotEqual(t, filepath.Base(spec.PauseBinaryName), pidLines[1], "the node's PID 1")
	}

	// /dev/shm: a second container of the pod sees what the first wrote;
	// a container of the other pod does not (unless both use the node's).
	shmFile := fmt.Sprintf("podsmith-join-%d", time.Now().UnixNano())
	f.run(t, a, pid, "echo shared > /dev/shm/"+shmFile)
	if nsMode == "host-ipc-pid" {
		t.Cleanup(func() { _ = os.Remove(filepath.Join("/dev/shm", shmFile)) })
	}
	assert.Equal(t, "shared\n", f.run(t, a, pid, "cat /dev/shm/"+shmFile))
	other := f.run(t, b, pid, "cat /dev/shm/"+shmFile+" 2>/dev/null || echo absent; hostname; cat /proc/sys/kernel/shmmni")
	if nsMode == "host-ipc-pid" {
		assert.Equal(t, "shared\npod-b\n"+string(hostShmmni), other, "both pods use the node's /dev/shm")
	} else {
		wantB := "pod-b"
		if nsMode == "host-network" {
			wantB = nodeHost
		}
		assert.Equal(t, "absent\n"+wantB+"\n1234\n", other, "pods share no /dev/shm")
		assert.NotEqual(t, a.Files.Shm, b.Files.Shm)
	}
	if nsMode == "pod" {
		require.Len(t, b.IPs, 1)
		assert.NotEqual(t, a.IPs, b.IPs)
	}

	if b.PausePid > 0 {
		// A pause that died: no container joins what its PID may now be.
		require.NoError(t, syscall.Kill(b.PausePid, syscall.SIGKILL))
		require.NoError(t, testutil.WaitExit(b.PausePid))
		_, err := b.ContainerOpts(ctx, "late", pid)
		require.ErrorIs(t, err, sandbox.ErrNotJoinable, "a dead pause")
	}
	for _, sb := range []*sandbox.Sandbox{a, b} {
		require.NoError(t, sb.Stop(ctx))
		_, err := sb.ContainerOpts(context.Background(), "late", pid)
		require.ErrorIs(t, err, sandbox.ErrNotJoinable, "a stopped pod")
		require.NoError(t, sb.Destroy(ctx))
	}
	assert.Empty(t, f.net.Allocations(), "IPAM released")
	assert.Empty(t, f.lc.Leaked())
}

// A sysctl of the pod's eth0: with a pause, the runtime sets it after CNI
// made eth0 (the Build does not overlap them then); a pod without a pause
// cannot have one.
func TestInterfaceSysctl(t *testing.T) {
	f := newJoinFixture(t, "runc", sandbox.PauseForSharedPID)
	ctx := context.Background()
	cfg := joinPod("eth0-sysctl", "pod", false)
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.conf.eth0.rp_filter": "2", "net/ipv4/conf/all/arp_ignore": "1"}
	sb, err := f.b.Build(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Destroy(ctx) })
	f.lc.TrackProcess(sb.PausePid)
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(sb.PausePid), "-n", "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter", "/proc/sys/net/ipv4/conf/all/arp_ignore").Output()
	require.NoError(t, err)
	assert.Equal(t, "2\n1\n", string(out))
	require.NoError(t, sb.Destroy(ctx))

	noPause := joinPod("eth0-no-pause", "pod", true)
	noPause.Linux.Sysctls = map[string]string{"net.ipv4.conf.eth0.rp_filter": "2"}
	_, err = f.b.Build(ctx, noPause)
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, `linux.sysctls["net.ipv4.conf.eth0.rp_filter"]`, ce.Problems[0].Field)

	// A value the kernel refuses fails the netns step (no pause: the
	// Builder writes it), and nothing is left.
	noPause.Linux.Sysctls = map[string]string{"net.core.somaxconn": "not-a-number"}
	_, err = f.b.Build(ctx, noPause)
	var se *sandbox.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, sandbox.StepNetns, se.Step)
	require.NoError(t, se.RollbackErr)
	assert.Empty(t, f.lc.Leaked())

	// Without a pause, the pins get the rest, the netns its net.* ones.
	noPause.Linux.Sysctls = map[string]string{"net/ipv4/conf/all/arp_ignore": "1", "kernel.shmmni": "777"}
	sb, err = f.b.Build(ctx, noPause)
	require.NoError(t, err)
	assert.Equal(t, "1\n777\n", f.run(t, sb, pod.NamespaceContainer, "cat /proc/sys/net/ipv4/conf/all/arp_ignore /proc/sys/kernel/shmmni"))
	require.NoError(t, sb.Destroy(ctx))
	assert.Empty(t, f.lc.Leaked())
}
