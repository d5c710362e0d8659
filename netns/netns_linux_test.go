package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
)

// pinDir gives a privileged test its own pin dir under the leak checker.
func pinDir(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	dir := filepath.Join(root, "pins")
	require.NoError(t, os.Mkdir(dir, 0o755))
	testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}, NetnsDir: dir})
	return dir
}

func hostInode(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat("/proc/thread-self/ns/net", &st))
	return st.Ino
}

func TestNewPinsANewNamespace(t *testing.T) {
	dir := pinDir(t)
	ns, err := New(dir, "pod-a")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Remove() })
	assert.Equal(t, filepath.Join(dir, "pod-a"), ns.Path())

	ino, err := ns.Inode()
	require.NoError(t, err)
	assert.NotEqual(t, hostInode(t), ino, "the pin is a new namespace, not the host's")

	// The creating goroutine is gone; the pin keeps the namespace alive
	// and Open sees the same one.
	opened, err := Open(ns.Path())
	require.NoError(t, err)
	ino2, err := opened.Inode()
	require.NoError(t, err)
	assert.Equal(t, ino, ino2)

	// Inside: only lo, and it is up. The caller's thread stays in the host
	// namespace.
	var ifs []net.Interface
	var insideIno uint64
	require.NoError(t, ns.Do(func() error {
		var st unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
			return err
		}
		insideIno = st.Ino
		ifs, err = net.Interfaces()
		return err
	}))
	assert.Equal(t, ino, insideIno, "Do runs fn inside the namespace")
	require.Len(t, ifs, 1)
	assert.Equal(t, "lo", ifs[0].Name)
	assert.NotZero(t, ifs[0].Flags&net.FlagUp, "lo is up")
	assert.NotEqual(t, ino, hostInode(t))

	pins, err := List(dir)
	require.NoError(t, err)
	assert.Equal(t, []Pin{{Path: ns.Path(), Live: true}}, pins)

	require.NoError(t, ns.Remove())
	assert.NoFileExists(t, ns.Path())
	require.NoError(t, ns.Remove(), "remove twice")
	_, err = Open(ns.Path())
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestDoReturnsFnError(t *testing.T) {
	dir := pinDir(t)
	ns, err := New(dir, "pod-err")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Remove() })
	sentinel := errors.New("boom")
	require.ErrorIs(t, ns.Do(func() error { return sentinel }), sentinel)
	require.NoError(t, ns.Remove())
}

func TestNewRefusesAnExistingPin(t *testing.T) {
	dir := pinDir(t)
	ns, err := New(dir, "pod-a")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Remove() })
	ino, err := ns.Inode()
	require.NoError(t, err)

	_, err = New(dir, "pod-a")
	require.ErrorIs(t, err, ErrExist)
	require.ErrorIs(t, err, os.ErrExist)
	// The first pin is untouched.
	still, err := Open(ns.Path())
	require.NoError(t, err)
	ino2, err := still.Inode()
	require.NoError(t, err)
	assert.Equal(t, ino, ino2)
	require.NoError(t, ns.Remove())
}

func TestNewFailureLeavesNothing(t *testing.T) {
	dir := pinDir(t)
	// The pin dir cannot be made: a file is in the way.
	blocked := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(blocked, nil, 0o600))
	_, err := New(filepath.Join(blocked, "sub"), "pod-a")
	require.ErrorIs(t, err, unix.ENOTDIR)
	require.NoError(t, os.Remove(blocked))

	// The pin file cannot be made: a read-only file system.
	require.NoError(t, unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY, "size=4k"))
	_, err = New(dir, "pod-b")
	require.ErrorIs(t, err, unix.EROFS)
	require.NoError(t, unix.Unmount(dir, 0))

	// Failures after the pin file is made, and after the namespace is
	// pinned: the pin is unmounted and removed.
	for _, stage := range []string{"mount", "loopback"} {
		injected := errors.New("injected at " + stage)
		failAt = func(s string) error {
			if s == stage {
				return injected
			}
			return nil
		}
		_, err = New(dir, "pod-c")
		failAt = nil
		require.ErrorIs(t, err, injected)
		pins, err := List(dir)
		require.NoError(t, err)
		assert.Empty(t, pins, "after a failure at %s", stage)
	}
}

func TestOpenRefusesWhatIsNotANetNS(t *testing.T) {
	dir := pinDir(t)
	stale := filepath.Join(dir, "stale")
	require.NoError(t, os.WriteFile(stale, nil, 0o444))
	_, err := Open(stale)
	require.ErrorIs(t, err, ErrNotNetNS)
	require.ErrorIs(t, (&NetNS{path: stale}).Do(func() error { return nil }), ErrNotNetNS)

	// A namespace file of another kind.
	_, err = Open("/proc/self/ns/uts")
	require.ErrorIs(t, err, ErrNotNetNS)

	pins, err := List(dir)
	require.NoError(t, err)
	assert.Equal(t, []Pin{{Path: stale, Live: false}}, pins)
	require.NoError(t, Remove(stale), "a stale pin is removed too")
}

func TestListMissingDir(t *testing.T) {
	pins, err := List(filepath.Join(t.TempDir(), "none"))
	require.NoError(t, err)
	assert.Empty(t, pins)
}

func TestRemoveAfterLazyUnmountFromOutside(t *testing.T) {
	dir := pinDir(t)
	ns, err := New(dir, "pod-a")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Remove() })
	out, err := exec.Command("umount", "-l", ns.Path()).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, ns.Remove())
	assert.NoFileExists(t, ns.Path())
}

func TestRemovePeelsStackedMounts(t *testing.T) {
	dir := pinDir(t)
	ns, err := New(dir, "pod-a")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Remove() })
	// Something pinned the same namespace over ours again.
	require.NoError(t, unix.Mount(ns.Path(), ns.Path(), "", unix.MS_BIND, ""))
	require.NoError(t, ns.Remove())
	assert.NoFileExists(t, ns.Path())
}

// A symlink in place of a pin is removed itself; the pin it points at is
// not unmounted.
func TestRemoveDoesNotFollowASymlink(t *testing.T) {
	dir := pinDir(t)
	ns, err := New(dir, "pod-a")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Remove() })
	link := filepath.Join(dir, "pod-b")
	require.NoError(t, os.Symlink(ns.Path(), link))

	require.NoError(t, Remove(link))
	_, err = os.Lstat(link)
	require.ErrorIs(t, err, fs.ErrNotExist)
	again, err := Open(ns.Path())
	require.NoError(t, err, "the pin is still a mounted network namespace")
	require.NoError(t, again.Remove())
}

// In a user namespace, mounts inherited from the parent are locked: they
// cannot be unmounted there, so the pin cannot be unlinked (EBUSY). This is
// what an embedder running in a container sees for a pin made outside.
func TestRemoveBusy(t *testing.T) {
	if p := os.Getenv("PODSMITH_TEST_REMOVE_BUSY"); p != "" {
		err := Remove(p)
		fmt.Printf("busy=%v err=%v\n", errors.Is(err, ErrBusy) && errors.Is(err, unix.EBUSY), err)
		return
	}
	dir := pinDir(t)
	testutil.RequireBinaries(t, "unshare")
	ns, err := New(dir, "pod-a")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Remove() })
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--mount", os.Args[0], "-test.run=^TestRemoveBusy$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PODSMITH_TEST_REMOVE_BUSY="+ns.Path(), "PODSMITH_REQUIRE_ROOT=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "busy=true", "%s", out)
	assert.FileExists(t, ns.Path())
	require.NoError(t, ns.Remove())
}

func TestConcurrentNewAndRemove(t *testing.T) {
	dir := pinDir(t)
	host := hostInode(t)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			ns, err := New(dir, fmt.Sprintf("pod-%d", i))
			if err != nil {
				errs <- err
				return
			}
			ino, err := ns.Inode()
			if err == nil && ino == host {
				err = fmt.Errorf("pod-%d pinned the host namespace", i)
			}
			if err == nil {
				err = ns.Do(func() error { return nil })
			}
			if rerr := ns.Remove(); rerr != nil {
				err = errors.Join(err, rerr)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, host, hostInode(t), "the test's own thread never moved")
	pins, err := List(dir)
	require.NoError(t, err)
	assert.Empty(t, pins)
}

func TestLeakCheckerSeesAForgottenPin(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	dir := filepath.Join(root, "pins")
	require.NoError(t, os.Mkdir(dir, 0o755))
	lc := testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}, NetnsDir: dir})
	ns, err := New(dir, "forgotten")
	require.NoError(t, err)
	leaked := lc.Leaked()
	assert.Contains(t, leaked, "leaked mounts (1): "+ns.Path())
	assert.Contains(t, leaked, "leaked netns pins (1): "+ns.Path())
	require.NoError(t, ns.Remove())
	assert.Empty(t, lc.Leaked())
}
