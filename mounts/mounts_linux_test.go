package mounts

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/selinux/go-selinux"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
)

// privileged gives a test a temp root under the leak checker.
func privileged(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}})
	return root
}

func mountEntry(t *testing.T, path string) *mountinfo.Info {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	require.NoError(t, err)
	require.Len(t, infos, 1, "expected exactly one mount on %s", path)
	return infos[0]
}

func TestMountShm(t *testing.T) {
	root := privileged(t)
	shm := filepath.Join(root, "shm")
	size, err := MountShm(shm, ShmOptions{Size: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = Unmount(shm) })
	assert.Equal(t, int64(1<<20), size)

	m := mountEntry(t, shm)
	assert.Equal(t, "tmpfs", m.FSType)
	assert.Equal(t, "shm", m.Source)
	opts := strings.Split(m.Options, ",")
	for _, o := range []string{"rw", "nosuid", "nodev", "noexec"} {
		assert.Contains(t, opts, o, "mount options %q", m.Options)
	}
	super := strings.Split(m.VFSOptions, ",")
	assert.Contains(t, super, "size=1024k", "super options %q", m.VFSOptions)
	// tmpfs lists mode only when it is not 1777, its default; stat shows it.

	st, err := os.Stat(shm)
	require.NoError(t, err)
	assert.Equal(t, os.ModeDir|os.ModeSticky|0o777, st.Mode())

	mounted, err := IsMountPoint(shm)
	require.NoError(t, err)
	assert.True(t, mounted)

	// The size is enforced: 1 MiB fits, one more page does not.
	f, err := os.Create(filepath.Join(shm, "fill"))
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	_, err = f.Write(make([]byte, os.Getpagesize()))
	require.ErrorIs(t, err, unix.ENOSPC)
	require.NoError(t, f.Close())

	require.NoError(t, Unmount(shm))
	assert.NoDirExists(t, shm)
	require.NoError(t, Unmount(shm), "unmount twice")
}

func TestMountShmDefaultSize(t *testing.T) {
	root := privileged(t)
	shm := filepath.Join(root, "shm")
	size, err := MountShm(shm, ShmOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = Unmount(shm) })
	assert.Equal(t, DefaultShmSize, size)
	assert.Contains(t, strings.Split(mountEntry(t, shm).VFSOptions, ","), "size=65536k")
	require.NoError(t, Unmount(shm))
}

func TestMountShmUsesAnExistingEmptyDir(t *testing.T) {
	root := privileged(t)
	shm := filepath.Join(root, "shm")
	require.NoError(t, os.Mkdir(shm, 0o755))
	_, err := MountShm(shm, ShmOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = Unmount(shm) })
	require.NoError(t, Unmount(shm))
	assert.NoDirExists(t, shm)
}

func TestMountShmRefusesAMountPoint(t *testing.T) {
	root := privileged(t)
	shm := filepath.Join(root, "shm")
	_, err := MountShm(shm, ShmOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = Unmount(shm) })

	_, err = MountShm(shm, ShmOptions{})
	require.ErrorIs(t, err, fs.ErrExist)
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(shm))
	require.NoError(t, err)
	assert.Len(t, infos, 1, "no second tmpfs stacked on the first")
	require.NoError(t, Unmount(shm))
}

func TestMountShmMissingParent(t *testing.T) {
	root := privileged(t)
	_, err := MountShm(filepath.Join(root, "nope", "shm"), ShmOptions{})
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestMountShmFailedMountRemovesTheDir(t *testing.T) {
	root := privileged(t)
	shm := filepath.Join(root, "shm")
	// A mount label on a host without SELinux makes the kernel refuse the
	// context= option; with SELinux, an unknown type does.
	label := "system_u:object_r:podsmith_no_such_type_t:s0"
	if !selinux.GetEnabled() {
		label = "system_u:object_r:container_file_t:s0"
	}
	_, err := MountShm(shm, ShmOptions{MountLabel: label})
	require.Error(t, err)
	assert.ErrorIs(t, err, unix.EINVAL)
	assert.Contains(t, err.Error(), shm)
	assert.NoDirExists(t, shm)
}

func TestUnmountMissingPath(t *testing.T) {
	root := privileged(t)
	require.NoError(t, Unmount(filepath.Join(root, "never-made")))
}

func TestUnmountPlainDir(t *testing.T) {
	root := privileged(t)
	dir := filepath.Join(root, "shm")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, Unmount(dir))
	assert.NoDirExists(t, dir)
}

func TestUnmountPeelsStackedMounts(t *testing.T) {
	root := privileged(t)
	shm := filepath.Join(root, "shm")
	_, err := MountShm(shm, ShmOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = Unmount(shm) })
	// Something else mounted over it (a buggy runtime, a person).
	require.NoError(t, unix.Mount("tmpfs", shm, "tmpfs", 0, "size=4k"))
	require.NoError(t, Unmount(shm))
	assert.NoDirExists(t, shm)
}

// A symlink where a mount point was expected (a bundle tampered with) is
// removed itself: the mount it points at stays, and so does its target.
func TestUnmountDoesNotFollowASymlink(t *testing.T) {
	root := privileged(t)
	target := filepath.Join(root, "target")
	_, err := MountShm(target, ShmOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = Unmount(target) })
	link := filepath.Join(root, "shm")
	require.NoError(t, os.Symlink(target, link))

	require.NoError(t, Unmount(link))
	_, err = os.Lstat(link)
	require.ErrorIs(t, err, fs.ErrNotExist)
	mounted, err := isMountPoint(target)
	require.NoError(t, err)
	assert.True(t, mounted, "the symlink's target is still mounted")
	require.NoError(t, Unmount(target))
}

func TestUnmountNotEmptyDir(t *testing.T) {
	root := privileged(t)
	dir := filepath.Join(root, "shm")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), nil, 0o600))
	err := Unmount(dir)
	require.Error(t, err)
	assert.True(t, errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST), "got %v", err)
	require.NoError(t, os.RemoveAll(dir))
}

func TestIsMountPoint(t *testing.T) {
	root := privileged(t)
	mounted, err := IsMountPoint(root)
	require.NoError(t, err)
	assert.False(t, mounted)
	mounted, err = IsMountPoint(filepath.Join(root, "missing"))
	require.NoError(t, err)
	assert.False(t, mounted)

	// A bind mount of a file on the same file system is a mount point too.
	src, dst := filepath.Join(root, "src"), filepath.Join(root, "dst")
	require.NoError(t, os.WriteFile(src, nil, 0o600))
	require.NoError(t, os.WriteFile(dst, nil, 0o600))
	require.NoError(t, unix.Mount(src, dst, "", unix.MS_BIND, ""))
	t.Cleanup(func() { _ = unix.Unmount(dst, unix.MNT_DETACH) })
	mounted, err = IsMountPoint(dst)
	require.NoError(t, err)
	assert.True(t, mounted)
	require.NoError(t, unix.Unmount(dst, unix.MNT_DETACH))
	require.NoError(t, os.Remove(src))
	require.NoError(t, os.Remove(dst))
}

func TestLeakCheckerSeesAForgottenMount(t *testing.T) {
	// The leak checker is what every other privileged test relies on:
	// prove it reports (and repairs) a mount left behind.
	testutil.RequireRoot(t)
	root := t.TempDir()
	lc := testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}})
	shm := filepath.Join(root, "shm")
	_, err := MountShm(shm, ShmOptions{})
	require.NoError(t, err)
	leaked := lc.Leaked()
	assert.Contains(t, leaked, "leaked mounts (1): "+shm)
	assert.True(t, slices.ContainsFunc(strings.Split(leaked, "\n"), func(l string) bool {
		return strings.Contains(l, "leaked files") && strings.Contains(l, shm)
	}), "the shm dir is a leaked file too: %s", leaked)
	require.NoError(t, Unmount(shm))
	assert.Empty(t, lc.Leaked())
}

func TestBindReadOnly(t *testing.T) {
	root := privileged(t)
	src, dst := filepath.Join(root, "src"), filepath.Join(root, "rootfs")
	require.NoError(t, os.Mkdir(src, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "pause"), []byte("x"), 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(src) })
	require.NoError(t, BindReadOnly(src, dst))
	t.Cleanup(func() { _ = Unmount(dst) })

	m := mountEntry(t, dst)
	opts := strings.Split(m.Options, ",")
	for _, o := range []string{"ro", "nosuid", "nodev"} {
		assert.Contains(t, opts, o, "mount options %q", m.Options)
	}
	assert.NotContains(t, opts, "noexec", "the pause binary must run")
	b, err := os.ReadFile(filepath.Join(dst, "pause"))
	require.NoError(t, err)
	assert.Equal(t, "x", string(b))
	err = os.WriteFile(filepath.Join(dst, "new"), nil, 0o644)
	require.ErrorIs(t, err, unix.EROFS, "read-only even for root")

	require.ErrorIs(t, BindReadOnly(src, dst), fs.ErrExist, "no second bind stacked")
	require.NoError(t, Unmount(dst))
	assert.NoDirExists(t, dst)
	assert.FileExists(t, filepath.Join(src, "pause"), "the source is untouched")
	require.NoError(t, os.RemoveAll(src))
}

func TestBindReadOnlyFailures(t *testing.T) {
	root := privileged(t)
	dst := filepath.Join(root, "rootfs")
	err := BindReadOnly(filepath.Join(root, "missing"), dst)
	require.ErrorIs(t, err, unix.ENOENT)
	assert.NoDirExists(t, dst, "the mount point it made is removed")

	src := filepath.Join(root, "src")
	require.NoError(t, os.Mkdir(src, 0o755))
	t.Cleanup(func() { _ = os.Remove(src) })
	injected := errors.New("injected remount failure")
	remount = func(string) error { return injected }
	t.Cleanup(func() { remount = defaultRemount })
	require.ErrorIs(t, BindReadOnly(src, dst), injected)
	remount = defaultRemount
	assert.NoDirExists(t, dst, "unmounted and removed after a failed remount")

	require.ErrorIs(t, BindReadOnly(src, filepath.Join(root, "no", "dst")), fs.ErrNotExist)
	require.NoError(t, os.Remove(src))
}

var defaultRemount = remount

// A symlink where a mount point should be is refused: the mount never
// lands where it points.
func TestMountsRefuseASymlinkedMountPoint(t *testing.T) {
	privileged(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	require.NoError(t, os.Mkdir(target, 0o755))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(target, link))
	_, err := MountShm(link, ShmOptions{Size: 1 << 20})
	require.ErrorIs(t, err, unix.ENOTDIR, "O_NOFOLLOW|O_DIRECTORY on a symlink")
	src := filepath.Join(dir, "src")
	require.NoError(t, os.Mkdir(src, 0o755))
	require.ErrorIs(t, BindReadOnly(src, link), unix.ENOTDIR)
	mounted, err := IsMountPoint(target)
	require.NoError(t, err)
	assert.False(t, mounted, "nothing mounted through the link")
}

// RemoveTree removes a tree but never what is on a mount inside it.
func TestRemoveTree(t *testing.T) {
	root := privileged(t)
	tree := filepath.Join(root, "tree")
	require.NoError(t, os.MkdirAll(filepath.Join(tree, "a", "b"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(tree, "a", "b", "f"), nil, 0o600))
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(tree, "link")))
	require.NoError(t, os.WriteFile(filepath.Join(outside, "kept"), nil, 0o600))
	m := filepath.Join(tree, "a", "m")
	require.NoError(t, os.Mkdir(m, 0o755))
	require.NoError(t, unix.Mount("tmpfs", m, "tmpfs", 0, "size=4k"))
	require.NoError(t, os.WriteFile(filepath.Join(m, "precious"), nil, 0o600))
	err := RemoveTree(tree)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "still a mount point")
	assert.FileExists(t, filepath.Join(m, "precious"))
	require.NoError(t, unix.Unmount(m, 0))
	require.NoError(t, RemoveTree(tree))
	assert.NoDirExists(t, tree)
	assert.FileExists(t, filepath.Join(outside, "kept"), "a symlink is removed, not followed")
	require.NoError(t, RemoveTree(tree), "gone is success")
}
