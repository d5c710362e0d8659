package sandbox_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
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

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/oci"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

// realOptions are Builder options on the real host, every directory under
// root, and the node's resolv.conf a file of the test's.
func realOptions(t testing.TB, root string, opts sandbox.Options) sandbox.Options {
	t.Helper()
	opts, err := realOptionsAt(root, opts)
	require.NoError(t, err)
	return opts
}

// realBuilder is a Builder on the real host with a leak check of
// everything under its directories. With an oci.Runtime in opts, the leak
// check covers the runtime's state dir and a cgroup parent of the test's
// own, where its pause containers go.
func realBuilder(t *testing.T, opts sandbox.Options) (*sandbox.Builder, *testutil.LeakCheck) {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	opts = realOptions(t, root, opts)
	leaks := testutil.Leaks{Roots: []string{root}, NetnsDir: opts.NetnsDir}
	if rt, ok := opts.Runtime.(*oci.Runtime); ok {
		leaks.Roots = append(leaks.Roots, rt.Root())
		leaks.Skeleton = append(leaks.Skeleton, rt.Root())
		if opts.CgroupParent == "" {
			opts.CgroupParent = testCgroupParent(t)
		}
		if !strings.HasPrefix(opts.CgroupParent, "/podsmith-test-") {
			// The node's parent (from another Builder's Options, say)
			// would outlive the test.
			t.Fatalf("a test with a runtime needs a cgroup parent of its own, not %q", opts.CgroupParent)
		}
		leaks.CgroupParent = opts.CgroupParent
	}
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	_, err = b.Prepare()
	require.NoError(t, err)
	lc := testutil.CheckLeaks(t, leaks)
	return b, lc
}

// testCgroupParent is a cgroup parent of the test's own, removed at its
// end (after its leak check).
func testCgroupParent(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	parent := fmt.Sprintf("/podsmith-test-%x", b)
	t.Cleanup(func() { assert.NoError(t, testutil.RemoveCgroup(parent, parent)) })
	return parent
}

func mountOf(t *testing.T, path string) *mountinfo.Info {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	require.NoError(t, err)
	require.Len(t, infos, 1, "one mount on %s", path)
	return infos[0]
}

func TestRealBuildAndDestroy(t *testing.T) {
	b, lc := realBuilder(t, sandbox.Options{})
	ctx := context.Background()
	cfg := podConfig("web")
	cfg.Annotations[pod.ShmSizeAnnotation] = "3Mi"
	sb, err := b.Build(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Destroy(ctx) })

	// A live, pinned network namespace with lo up.
	ns, err := netns.Open(sb.NetnsPath)
	require.NoError(t, err)
	var ifs []net.Interface
	require.NoError(t, ns.Do(func() (err error) { ifs, err = net.Interfaces(); return err }))
	require.Len(t, ifs, 1)
	assert.NotZero(t, ifs[0].Flags&net.FlagUp)

	shm := mountOf(t, sb.Files.Shm)
	assert.Equal(t, "tmpfs", shm.FSType)
	assert.Contains(t, strings.Split(shm.VFSOptions, ","), "size=3072k")
	rootfs := mountOf(t, sb.Files.Rootfs)
	assert.Contains(t, strings.Split(rootfs.Options, ","), "ro")
	assert.FileExists(t, filepath.Join(sb.Files.Rootfs, "pause"))

	require.NoError(t, sb.Destroy(ctx))
	assert.Empty(t, lc.Leaked())
	require.NoError(t, sb.Destroy(ctx), "destroy twice")
}

func TestRealFaultInjectionAtEveryStep(t *testing.T) {
	for _, mode := range crashModes {
		t.Run(mode.name, func(t *testing.T) { realFaultInjectionAtEveryStep(t, mode) })
	}
}

func realFaultInjectionAtEveryStep(t *testing.T, mode buildMode) {
	var failAt sandbox.Step
	injected := errors.New("injected")
	opts := sandbox.Options{Runtime: testutil.NewRuntime(t, "runc")}
	mode.apply(&opts)
	podConfig := mode.config
	b, lc := realBuilder(t, beforeStep(opts, func(_ context.Context, _ string, s sandbox.Step) error {
		if s == failAt {
			return injected
		}
		return nil
	}))
	searchableFrom(t, b.Options().RunDir)
	ctx := context.Background()
	for _, step := range stepsOf(mode.noPause) {
		failAt = step
		_, err := b.Build(ctx, podConfig("web"))
		require.ErrorIs(t, err, injected, step)
		var se *sandbox.StepError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, step, se.Step)
		assert.NoError(t, se.RollbackErr)
		assert.Empty(t, lc.Leaked(), "after a failure at %s", step)

		failAt = ""
		sb, err := b.Build(ctx, podConfig("web"))
		require.NoError(t, err, "the name is free after a failure at %s", step)
		lc.TrackProcess(sb.PausePid)
		require.NoError(t, sb.Destroy(ctx))
		assert.Empty(t, lc.Leaked())
	}
}

func TestRealCancelledBuild(t *testing.T) {
	var cancelAt sandbox.Step
	var cancel context.CancelFunc
	b, lc := realBuilder(t, beforeStep(sandbox.Options{}, func(_ context.Context, _ string, s sandbox.Step) error {
		if s == cancelAt {
			cancel()
		}
		return nil
	}))
	for _, step := range []sandbox.Step{sandbox.StepDirs, sandbox.StepRootfs, sandbox.StepShm, sandbox.StepNetns} {
		ctx, c := context.WithCancel(context.Background())
		cancel, cancelAt = c, step
		_, err := b.Build(ctx, podConfig("web"))
		c()
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, lc.Leaked(), "after a cancel during %s", step)
	}
}

// What is planted in place of a built sandbox's config.json (garbage, a
// FIFO, a device, a symlink to a file of someone else's) neither blocks a
// Find or a List nor stops the Destroy: the sandbox loads without its spec
// and goes, and the symlink's target is left as it was.
func TestRealDestroyWithAPlantedSpec(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim.json")
	require.NoError(t, os.WriteFile(victim, []byte(`{"ociVersion":"1.0.0"}`), 0o644))
	for name, plant := range map[string]func(path string) error{
		"garbage": func(p string) error { return os.WriteFile(p, []byte("garbage"), 0o644) },
		"empty":   func(p string) error { return os.WriteFile(p, nil, 0o644) },
		"fifo":    func(p string) error { return unix.Mkfifo(p, 0o644) },
		"zero":    func(p string) error { return os.Symlink("/dev/zero", p) },
		"symlink": func(p string) error { return os.Symlink(victim, p) },
	} {
		t.Run(name, func(t *testing.T) {
			b, lc := realBuilder(t, sandbox.Options{})
			ctx := context.Background()
			sb, err := b.Build(ctx, podConfig("web"))
			require.NoError(t, err)
			t.Cleanup(func() { _ = sb.Destroy(ctx) })
			cfg := filepath.Join(sb.BundleDir, spec.ConfigFile)
			require.NoError(t, os.Remove(cfg))
			require.NoError(t, plant(cfg))

			loaded := make(chan *sandbox.Sandbox, 1)
			go func() {
				defer close(loaded)
				list, err := b.List()
				if assert.NoError(t, err) && assert.Len(t, list, 1) {
					assert.NoError(t, list[0].Err)
				}
				found, err := b.Find(sb.Name)
				if assert.NoError(t, err) {
					loaded <- found
				}
			}()
			var found *sandbox.Sandbox
			select {
			case found = <-loaded:
			case <-time.After(30 * time.Second):
				t.Fatal("loading the sandbox never ends") // the FIFO: a failure, not a hung test
			}
			require.NotNil(t, found)
			assert.Equal(t, sandbox.StateBuilt, found.State)
			assert.Nil(t, found.Spec)
			require.NoError(t, found.Destroy(ctx))
			assert.Empty(t, lc.Leaked())
			kept, err := os.ReadFile(victim)
			require.NoError(t, err)
			assert.JSONEq(t, `{"ociVersion":"1.0.0"}`, string(kept))
		})
	}
}

func TestRealDestroyAfterPartialManualCleanup(t *testing.T) {
	b, lc := realBuilder(t, sandbox.Options{})
	ctx := context.Background()
	sb, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Destroy(ctx) })
	// Someone already did part of the teardown, by hand.
	require.NoError(t, exec.Command("umount", "-l", sb.Files.Shm).Run())
	require.NoError(t, netns.Remove(sb.NetnsPath))
	require.NoError(t, os.Remove(sb.Files.ResolvConf))
	require.NoError(t, unix.Unmount(sb.Files.Rootfs, unix.MNT_DETACH))
	require.NoError(t, os.Remove(sb.Files.Rootfs))

	// A fresh Builder on the same directories finishes it.
	b2, err := sandbox.NewBuilder(b.Options())
	require.NoError(t, err)
	loaded, err := b2.Find(sb.Name)
	require.NoError(t, err)
	require.NoError(t, loaded.Destroy(ctx))
	assert.Empty(t, lc.Leaked())
}

func TestRealRollbackRefusesToCrossAMount(t *testing.T) {
	// A mount nobody journaled lands inside the bundle: the rollback must
	// not delete what is on it, and says so; Destroy finishes once it is
	// gone.
	var extra string
	var b *sandbox.Builder
	injected := errors.New("injected")
	b, lc := realBuilder(t, beforeStep(sandbox.Options{}, func(_ context.Context, id string, s sandbox.Step) error {
		if s != sandbox.StepNetns || extra != "" {
			return nil
		}
		extra = filepath.Join(b.Options().RunDir, "sandboxes", id, "extra")
		if err := os.Mkdir(extra, 0o700); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", extra, "tmpfs", 0, "size=4k"); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(extra, "precious"), []byte("x"), 0o600); err != nil {
			return err
		}
		return injected
	}))
	ctx := context.Background()
	_, err := b.Build(ctx, podConfig("web"))
	var se *sandbox.StepError
	require.ErrorAs(t, err, &se)
	require.Error(t, se.RollbackErr)
	assert.Contains(t, se.RollbackErr.Error(), "still a mount point")
	assert.FileExists(t, filepath.Join(extra, "precious"), "nothing deleted across the mount")
	sb, err := b.Find(se.ID)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateNeedsCleanup, sb.State)

	require.Error(t, sb.Destroy(ctx), "still in the way")
	require.NoError(t, unix.Unmount(extra, 0))
	require.NoError(t, sb.Destroy(ctx))
	assert.Empty(t, lc.Leaked())
}

func TestRealConcurrentBuilds(t *testing.T) {
	b, lc := realBuilder(t, sandbox.Options{})
	ctx := context.Background()

	// 200 Build+Destroy cycles across 4 goroutines, distinct names.
	cycles(t, b, 4, 50, "pod")
	assert.Empty(t, lc.Leaked())

	// 4 goroutines race for one name: one wins, the others are told who.
	winner := contend(t, b, "contended")
	require.NoError(t, winner.Destroy(ctx))
	assert.Empty(t, lc.Leaked())
}

// TestRealRecoverAfterCrash kills a building child process at every point
// (see crashPoints) on the real host, then recovers.
func TestRealRecoverAfterCrash(t *testing.T) {
	testutil.RequireRoot(t)
	for _, mode := range crashModes {
		for _, at := range crashPoints(mode) {
			if strings.HasSuffix(at, ":attach") || strings.HasSuffix(at, ":detach") {
				continue // no network here: TestNetworkRecoverAfterACrash has them
			}
			t.Run(mode.name+"/"+at, func(t *testing.T) { realRecoverAfterCrash(t, at, mode.env()) })
		}
	}
}

func realRecoverAfterCrash(t *testing.T, at, env string) {
	root := t.TempDir()
	searchableFrom(t, root) // for the pods in a user namespace
	rt, err := crashRuntimeAt(root, "runc")
	require.NoError(t, err)
	require.NoError(t, testutil.BecomeSubreaper())
	opts := realOptions(t, root, sandbox.Options{Runtime: rt, CgroupParent: testCgroupParent(t)})
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	_, err = b.Prepare()
	require.NoError(t, err)
	lc := testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}, NetnsDir: opts.NetnsDir, CgroupParent: opts.CgroupParent,
		Skeleton: []string{rt.Root()}})

	runToCrash(t, root, at, env, envCrashReal+"=1", envCrashRuntime+"=runc", envCrashCgroup+"="+opts.CgroupParent)

	ctx := context.Background()
	_, err = b.Recover(ctx)
	require.NoError(t, err)
	if at == "built" {
		list, err := b.List()
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.NoError(t, list[0].Destroy(ctx))
	}
	assert.Empty(t, lc.Leaked(), "after a crash at %s", at)
}

func TestBuiltBundleRuns(t *testing.T) {
	testutil.RequireRoot(t)
	for _, name := range []string{"runc", "crun"} {
		t.Run(name, func(t *testing.T) {
			b, lc := realBuilder(t, sandbox.Options{Runtime: testutil.NewRuntime(t, name)})
			ctx := context.Background()
			sb, err := b.Build(ctx, podConfig("web"))
			require.NoError(t, err)
			t.Cleanup(func() { _ = sb.Destroy(ctx) })
			pid := sb.PausePid
			require.Positive(t, pid)
			lc.TrackProcess(pid)
			st, err := sb.PauseState(ctx)
			require.NoError(t, err)
			assert.Equal(t, specs.StateRunning, st.Status)
			assert.Equal(t, pid, st.Pid)

			var pinned, inside unix.Stat_t
			require.NoError(t, unix.Stat(sb.NetnsPath, &pinned))
			require.NoError(t, unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &inside))
			assert.Equal(t, pinned.Ino, inside.Ino)
			out, err := exec.Command("nsenter", "-t", fmt.Sprint(pid), "-u", "hostname").Output()
			require.NoError(t, err)
			assert.Equal(t, "web", strings.TrimSpace(string(out)))
			resolv, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", pid))
			require.NoError(t, err)
			assert.Equal(t, "nameserver 192.0.2.53\n", string(resolv))
			hosts, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/hosts", pid))
			require.NoError(t, err)
			assert.Contains(t, string(hosts), "localhost")
			sysctl, err := exec.Command("nsenter", "-t", fmt.Sprint(pid), "-n", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start").Output()
			require.NoError(t, err)
			assert.Equal(t, "80", strings.TrimSpace(string(sysctl)))

			// Stop removes the pause (and reaps it: this test is its
			// subreaper); Destroy the rest.
			require.NoError(t, sb.Stop(ctx))
			assert.NoFileExists(t, fmt.Sprintf("/proc/%d/stat", pid), "the pause is gone and reaped")
			assert.Zero(t, sb.PausePid)
			_, err = sb.PauseState(ctx)
			require.ErrorIs(t, err, sandbox.ErrNotFound)
			require.NoError(t, sb.Stop(ctx), "twice")
			require.NoError(t, sb.Destroy(ctx))
			assert.Empty(t, lc.Leaked())
		})
	}
}
