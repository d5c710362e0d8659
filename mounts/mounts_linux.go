package mounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/selinux/go-selinux/label"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/peel"
)

// shmFlags are the mount flags of a shm tmpfs.
const shmFlags = unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV

// mountPointDir makes the directory path for a mount (an existing one that
// is not a mount point will do) and reports whether it made it.
func mountPointDir(what, path string, mode os.FileMode) (created bool, err error) {
	if err := os.Mkdir(path, mode); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("mounts: %s: %w", what, err)
		}
		mounted, err := isMountPoint(path)
		if err != nil {
			return false, fmt.Errorf("mounts: %s: %w", what, err)
		}
		if mounted {
			return false, fmt.Errorf("mounts: %s: %s is already a mount point: %w", what, path, fs.ErrExist)
		}
		return false, nil
	}
	return true, nil
}

// onDir runs fn with a path that names the directory path without following
// a symlink there (a /proc/self/fd path of an O_PATH descriptor): a
// symlink planted at path after mountPointDir made it fails, instead of
// taking the mount where it points.
func onDir(path string, fn func(target string) error) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	return fn("/proc/self/fd/" + strconv.Itoa(fd))
}

func mountShm(path string, size int64, mountLabel string, owner *Owner) error {
	created, err := mountPointDir("shm", path, 0o700)
	if err != nil {
		return err
	}
	opts := "mode=1777,size=" + strconv.FormatInt(size, 10)
	if owner != nil {
		opts += fmt.Sprintf(",uid=%d,gid=%d", owner.UID, owner.GID)
	}
	data := label.FormatMountLabel(opts, mountLabel)
	if err := onDir(path, func(target string) error { return unix.Mount("shm", target, "tmpfs", shmFlags, data) }); err != nil {
		if created {
			_ = os.Remove(path)
		}
		return fmt.Errorf("mounts: shm: mount tmpfs on %s (%s): %w", path, data, err)
	}
	return nil
}

// bindFlags are the flags of the read-only remount of a bind.
const bindFlags = unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV

func bindReadOnly(src, dst string) error {
	created, err := mountPointDir("bind", dst, 0o755)
	if err != nil {
		return err
	}
	if err := onDir(dst, func(target string) error { return unix.Mount(src, target, "", unix.MS_BIND, "") }); err != nil {
		if created {
			_ = os.Remove(dst)
		}
		return fmt.Errorf("mounts: bind %s on %s: %w", src, dst, err)
	}
	if err := remount(dst); err != nil {
		_ = unix.Unmount(dst, unix.MNT_DETACH)
		if created {
			_ = os.Remove(dst)
		}
		return fmt.Errorf("mounts: remount %s read-only: %w", dst, err)
	}
	return nil
}

func unmountAndRemove(path string) error {
	if err := peel.Unmount(path); err != nil {
		return fmt.Errorf("mounts: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mounts: remove %s: %w", path, err)
	}
	return nil
}

func isMountPoint(path string) (bool, error) {
	mounted, err := mountinfo.Mounted(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return mounted, err
}

// remount makes a bind read-only (the mount on dst, reached without
// following a symlink); a variable so tests can make it fail.
var remount = func(dst string) error {
	return onDir(dst, func(target string) error { return unix.Mount("", target, "", bindFlags, "") })
}
