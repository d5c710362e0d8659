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
)

// shmFlags are the mount flags of a shm tmpfs.
const shmFlags = unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV

// maxUnmounts bounds the loop that peels stacked mounts off a path.
const maxUnmounts = 16

func mountShm(path string, size int64, mountLabel string) error {
	created := true
	if err := os.Mkdir(path, 0o700); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("mounts: shm: %w", err)
		}
		created = false
		mounted, err := isMountPoint(path)
		if err != nil {
			return fmt.Errorf("mounts: shm: %w", err)
		}
		if mounted {
			return fmt.Errorf("mounts: shm: %s is already a mount point: %w", path, fs.ErrExist)
		}
	}
	data := label.FormatMountLabel("mode=1777,size="+strconv.FormatInt(size, 10), mountLabel)
	if err := unix.Mount("shm", path, "tmpfs", shmFlags, data); err != nil {
		if created {
			_ = os.Remove(path)
		}
		return fmt.Errorf("mounts: shm: mount tmpfs on %s (%s): %w", path, data, err)
	}
	return nil
}

func unmountAndRemove(path string) error {
	for i := 0; ; i++ {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if err == nil {
			if i == maxUnmounts {
				return fmt.Errorf("mounts: unmount %s: still mounted after %d unmounts", path, maxUnmounts)
			}
			continue
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not (or no longer) a mount point
		}
		return fmt.Errorf("mounts: unmount %s: %w", path, err)
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
