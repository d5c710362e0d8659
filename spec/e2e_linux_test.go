package spec_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/oci"
	"github.com/podsmith/podsmith/spec"
)

// variant is one kind of pod the end-to-end test runs.
type variant struct {
	name                          string
	hostNetwork, hostPID, hostIPC bool
	privileged                    bool
	seccomp                       *specs.LinuxSeccomp
	sysctls                       map[string]string
}

var variants = []variant{
	{name: "pod-pause-profile", seccomp: spec.PauseProfile(), sysctls: map[string]string{
		"net.ipv4.ping_group_range": "0 2147483647", "net/core/somaxconn": "1234", "kernel.shmmni": "2048", "kernel.msgmax": "12345",
	}},
	{name: "pod-runtime-default", seccomp: spec.RuntimeDefaultProfile(), sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}},
	{name: "host-network", hostNetwork: true, seccomp: spec.PauseProfile(), sysctls: map[string]string{"kernel.shmmax": "123456789"}},
	{name: "host-pid", hostPID: true, seccomp: spec.PauseProfile()},
	{name: "host-ipc", hostIPC: true, seccomp: spec.PauseProfile(), sysctls: map[string]string{"net.core.somaxconn": "999"}},
	{name: "privileged", privileged: true},
}

func randomID(t testing.TB) string {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// sandbox is what the test built on the host for one pause container.
type sandbox struct {
	id, bundle, resolv, hostname string
	shmSize                      int64
	pinIno                       uint64
	cgroupParent, cgroupsPath    string
	oom                          int
	v                            variant
}

// build makes the host resources and the bundle of one sandbox with the
// leaf packages, registering their teardown with t.
func build(t *testing.T, root string, rootfs *spec.PauseRootfs, v variant) *sandbox {
	t.Helper()
	sb := &sandbox{id: randomID(t), v: v, bundle: filepath.Join(root, "bundle")}
	require.NoError(t, os.Mkdir(sb.bundle, 0o700))
	t.Cleanup(func() {
		assert.NoError(t, os.RemoveAll(sb.bundle))
		assert.NoError(t, os.RemoveAll(filepath.Join(root, "netns")))
	})
	rootfsMount := filepath.Join(sb.bundle, spec.BundleRootfs)
	require.NoError(t, mounts.BindReadOnly(rootfs.Path, rootfsMount))
	t.Cleanup(func() { assert.NoError(t, mounts.Unmount(rootfsMount)) })
	opts := []spec.Opt{rootfs.Opt()}

	switch {
	case v.hostNetwork:
		opts = append(opts, spec.WithHostNetwork())
	default:
		ns, err := netns.New(filepath.Join(root, "netns"), sb.id[:12])
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, ns.Remove()) })
		sb.pinIno, err = ns.Inode()
		require.NoError(t, err)
		opts = append(opts, spec.WithNamespace(specs.NetworkNamespace, ns.Path()))
	}
	if v.hostPID {
		opts = append(opts, spec.WithHostPID())
	}
	shm := "/dev/shm"
	if v.hostIPC {
		opts = append(opts, spec.WithHostIPC())
	} else {
		shm = filepath.Join(sb.bundle, "shm")
		size, err := mounts.MountShm(shm, mounts.ShmOptions{Size: 3 << 20})
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, mounts.Unmount(shm)) })
		sb.shmSize = size
	}

	resolv, err := dns.Render(dns.Config{Servers: []string{"192.0.2.53"}, Searches: []string{"svc.test.local"}, Options: []string{"ndots:2"}})
	require.NoError(t, err)
	sb.resolv = string(resolv)
	require.NoError(t, dns.WriteFile(filepath.Join(sb.bundle, "resolv.conf"), resolv, false))
	hostname, err := dns.Hostname("", sb.id, v.hostNetwork, nil)
	require.NoError(t, err)
	sb.hostname = hostname
	require.NoError(t, dns.WriteFile(filepath.Join(sb.bundle, "hostname"), dns.HostnameFile(hostname), false))
	require.NoError(t, dns.WriteFile(filepath.Join(sb.bundle, "hosts"), dns.Hosts(hostname, nil), false))
	if !v.hostNetwork {
		opts = append(opts, spec.WithHostname(hostname))
	}
	opts = append(opts, spec.WithMounts(
		mounts.ShmBind(shm),
		mounts.ReadOnlyBind(filepath.Join(sb.bundle, "resolv.conf"), "/etc/resolv.conf"),
		mounts.ReadOnlyBind(filepath.Join(sb.bundle, "hostname"), "/etc/hostname"),
		mounts.ReadOnlyBind(filepath.Join(sb.bundle, "hosts"), "/etc/hosts"),
	))

	sb.cgroupParent = "/podsmith-e2e-" + sb.id[:8]
	sb.cgroupsPath, err = cgroups.CgroupsPath(cgroups.Cgroupfs, sb.cgroupParent, "podsmith", sb.id)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, testutil.RemoveCgroup(sb.cgroupsPath, sb.cgroupParent)) })
	sb.oom, err = spec.EffectiveOOMScoreAdj(spec.DefaultOOMScoreAdj, spec.OOMAuto)
	require.NoError(t, err)
	opts = append(opts,
		spec.WithCgroupsPath(sb.cgroupsPath),
		spec.WithSysctls(v.sysctls),
		spec.WithOOMScoreAdj(sb.oom),
		spec.WithSeccomp(v.seccomp),
		spec.WithAnnotations(map[string]string{spec.AnnotationSandboxID: sb.id, spec.CRIContainerType: spec.ContainerTypeSandbox}),
	)
	if v.privileged {
		caps, err := spec.HostCapabilities()
		require.NoError(t, err)
		opts = append(opts, spec.WithPrivileged(caps))
	}
	s, err := spec.New(opts...)
	require.NoError(t, err)
	require.NoError(t, spec.Save(sb.bundle, s, spec.SaveOptions{}))
	return sb
}

func TestPauseBundleRuns(t *testing.T) {
	testutil.RequireRoot(t)
	for _, name := range []string{"runc", "crun"} {
		for _, v := range variants {
			t.Run(name+"/"+v.name, func(t *testing.T) {
				root := t.TempDir()
				rt := testutil.NewRuntime(t, name)
				lc := testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}})
				rootfs, err := spec.PreparePauseRootfs(filepath.Join(root, "rootfs"), spec.PauseOptions{})
				require.NoError(t, err)
				t.Cleanup(func() { assert.NoError(t, os.RemoveAll(filepath.Join(root, "rootfs"))) })
				sb := build(t, root, rootfs, v)

				ctx := context.Background()
				pid, err := rt.Create(ctx, sb.id, sb.bundle)
				require.NoError(t, err)
				lc.TrackProcess(pid)
				stopped := false
				t.Cleanup(func() {
					if !stopped {
						assert.NoError(t, testutil.RemoveContainer(rt, sb.id))
					}
					assert.NoError(t, os.Remove(filepath.Join(sb.bundle, oci.PidFile)))
				})
				w, err := testutil.NewExecWatcher()
				require.NoError(t, err)
				defer w.Close()
				require.NoError(t, rt.Start(ctx, sb.id))
				require.NoError(t, w.Wait(pid, time.Minute), "the pause process exec'd")
				checkInside(t, sb, pid)

				require.NoError(t, testutil.RemoveContainer(rt, sb.id))
				stopped = true
				assert.NoFileExists(t, fmt.Sprintf("/proc/%d/stat", pid), "the pause process is gone and reaped")
				dirs, err := testutil.CgroupDirs(sb.cgroupsPath)
				require.NoError(t, err)
				for _, d := range dirs {
					assert.NoDirExists(t, d, "the runtime removed the pause's cgroup")
				}
			})
		}
	}
}

func readProc(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	require.NoError(t, err)
	return string(b)
}

func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st))
	return st.Ino
}

func statusField(t *testing.T, pid int, field string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(readProc(t, pid, "status")))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

func nsenter(t *testing.T, pid int, flags string, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(pid), flags}, args...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.TrimSpace(string(out))
}

// checkInside looks into the running pause process from the host.
func checkInside(t *testing.T, sb *sandbox, pid int) {
	v := sb.v
	self := os.Getpid()

	// The process is the pause binary.
	cmdline := readProc(t, pid, "cmdline")
	assert.True(t, strings.HasPrefix(cmdline, "/pause\x00-P"), "cmdline %q", cmdline)

	// Namespaces.
	same := func(ns string) bool {
		return nsIno(t, fmt.Sprintf("/proc/%d/ns/%s", pid, ns)) == nsIno(t, fmt.Sprintf("/proc/%d/ns/%s", self, ns))
	}
	if v.hostNetwork {
		assert.True(t, same("net"), "host network")
		assert.True(t, same("uts"), "host network shares the host's UTS namespace")
	} else {
		assert.Equal(t, sb.pinIno, nsIno(t, fmt.Sprintf("/proc/%d/ns/net", pid)), "the pinned netns")
		assert.False(t, same("uts"))
		assert.Equal(t, sb.hostname, nsenter(t, pid, "-u", "hostname"))
	}
	assert.Equal(t, v.hostPID, same("pid"), "pid namespace")
	assert.Equal(t, v.hostIPC, same("ipc"), "ipc namespace")
	assert.False(t, same("mnt"))

	// Files.
	resolv, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", pid))
	require.NoError(t, err)
	assert.Equal(t, sb.resolv, string(resolv))
	hn, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/hostname", pid))
	require.NoError(t, err)
	assert.Equal(t, sb.hostname+"\n", string(hn))

	// Mounts: /dev/shm, and a read-only root.
	infos, err := mountinfo.GetMountsFromReader(strings.NewReader(readProc(t, pid, "mountinfo")), nil)
	require.NoError(t, err)
	byPoint := map[string]*mountinfo.Info{}
	for _, i := range infos {
		byPoint[i.Mountpoint] = i // the last mount on a point is the visible one
	}
	shm := byPoint["/dev/shm"]
	require.NotNil(t, shm, "/dev/shm is mounted")
	assert.Equal(t, "tmpfs", shm.FSType)
	if v.hostIPC {
		host, err := mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) { return i.Mountpoint != "/dev/shm", false })
		require.NoError(t, err)
		require.NotEmpty(t, host)
		assert.Equal(t, host[len(host)-1].Major, shm.Major)
		assert.Equal(t, host[len(host)-1].Minor, shm.Minor, "the host's /dev/shm")
	} else {
		assert.Contains(t, strings.Split(shm.VFSOptions, ","), fmt.Sprintf("size=%dk", sb.shmSize>>10))
	}
	for _, o := range []string{"nosuid", "nodev", "noexec"} {
		assert.Contains(t, strings.Split(shm.Options, ","), o)
	}
	require.NotNil(t, byPoint["/"])
	assert.Contains(t, strings.Split(byPoint["/"].Options, ","), "ro", "read-only root")

	// Sysctls, read from inside the pod's network and IPC namespaces.
	for name, want := range v.sysctls {
		p := "/proc/sys/" + strings.ReplaceAll(spec.NormalizeSysctlName(name), ".", "/")
		got := nsenter(t, pid, "-n", "-i", "cat", p)
		assert.Equal(t, strings.Join(strings.Fields(want), "\t"), strings.Join(strings.Fields(got), "\t"), name)
	}

	// Cgroup: every hierarchy puts the pause under the requested parent.
	for _, line := range strings.Split(strings.TrimSpace(readProc(t, pid, "cgroup")), "\n") {
		parts := strings.SplitN(line, ":", 3)
		require.Len(t, parts, 3, line)
		if parts[1] == "name=systemd" || (parts[1] == "" && parts[0] == "0" && !strings.HasPrefix(parts[2], sb.cgroupParent)) {
			continue // hierarchies a cgroupfs runtime may leave alone
		}
		assert.True(t, strings.HasPrefix(parts[2], sb.cgroupParent+"/"), "cgroup line %q", line)
	}

	// Security.
	wantSeccomp := "2"
	if v.seccomp == nil || v.privileged {
		wantSeccomp = "0"
	}
	assert.Equal(t, wantSeccomp, statusField(t, pid, "Seccomp"))
	assert.Equal(t, fmt.Sprint(sb.oom), strings.TrimSpace(readProc(t, pid, "oom_score_adj")))
	assert.Equal(t, "1", statusField(t, pid, "NoNewPrivs"))
	uids := strings.Fields(statusField(t, pid, "Uid"))
	assert.Equal(t, "65535", uids[0])
	if v.privileged {
		assert.NotEqual(t, "0000000000000000", statusField(t, pid, "CapBnd"))
	}
}

// BenchmarkRuntime times create + start + kill + wait + delete of one pause
// bundle, for each runtime and seccomp profile.
func BenchmarkRuntime(b *testing.B) {
	testutil.RequireRoot(b)
	for _, name := range []string{"runc", "crun"} {
		for _, v := range []variant{
			{name: "runtime-default", seccomp: spec.RuntimeDefaultProfile()},
			{name: "pause-only", seccomp: spec.PauseProfile()},
			{name: "no-seccomp"},
		} {
			b.Run(name+"/"+v.name, func(b *testing.B) {
				root := b.TempDir()
				rt := testutil.NewRuntime(b, name)
				rootfs, err := spec.PreparePauseRootfs(filepath.Join(root, "rootfs"), spec.PauseOptions{})
				require.NoError(b, err)
				b.Cleanup(func() { os.RemoveAll(filepath.Join(root, "rootfs")) })
				bundle := benchBundle(b, root, rootfs, v)
				// CPU time of the runtime processes (and the pause), which
				// are all reaped children of this process: steadier than
				// wall time on a VM where every exec costs milliseconds.
				var before, after unix.Rusage
				require.NoError(b, unix.Getrusage(unix.RUSAGE_CHILDREN, &before))
				for b.Loop() {
					id := randomID(b)[:16]
					ctx := context.Background()
					if _, err := rt.Create(ctx, id, bundle); err != nil {
						b.Fatal(err)
					}
					if err := rt.Start(ctx, id); err != nil {
						b.Fatal(err)
					}
					if err := testutil.RemoveContainer(rt, id); err != nil {
						b.Fatal(err)
					}
				}
				require.NoError(b, unix.Getrusage(unix.RUSAGE_CHILDREN, &after))
				cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
				b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "child-cpu-ms/op")
			})
		}
	}
}

// benchBundle is a pause bundle with its own netns and the host's /dev/shm,
// reused by every iteration.
func benchBundle(b *testing.B, root string, rootfs *spec.PauseRootfs, v variant) string {
	bundle := filepath.Join(root, "bundle")
	require.NoError(b, os.Mkdir(bundle, 0o700))
	require.NoError(b, mounts.BindReadOnly(rootfs.Path, filepath.Join(bundle, spec.BundleRootfs)))
	b.Cleanup(func() { _ = mounts.Unmount(filepath.Join(bundle, spec.BundleRootfs)) })
	ns, err := netns.New(filepath.Join(root, "netns"), "bench")
	require.NoError(b, err)
	b.Cleanup(func() { _ = ns.Remove() })
	resolv := filepath.Join(bundle, "resolv.conf")
	require.NoError(b, dns.WriteFile(resolv, []byte("nameserver 192.0.2.53\n"), false))
	oom, err := spec.EffectiveOOMScoreAdj(spec.DefaultOOMScoreAdj, spec.OOMAuto)
	require.NoError(b, err)
	parent := "/podsmith-bench-" + randomID(b)[:8]
	path := parent + "/pause"
	b.Cleanup(func() { _ = testutil.RemoveCgroup(path, parent) })
	s, err := spec.New(rootfs.Opt(),
		spec.WithNamespace(specs.NetworkNamespace, ns.Path()),
		spec.WithHostname("bench"),
		spec.WithMounts(mounts.ShmBind("/dev/shm"), mounts.ReadOnlyBind(resolv, "/etc/resolv.conf")),
		spec.WithCgroupsPath(path),
		spec.WithOOMScoreAdj(oom),
		spec.WithSeccomp(v.seccomp),
	)
	require.NoError(b, err)
	require.NoError(b, spec.Save(bundle, s, spec.SaveOptions{}))
	return bundle
}
