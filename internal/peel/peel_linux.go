package peel

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrStillMounted: more mounts are stacked on a path than Unmount peels.
var ErrStillMounted = errors.New("still mounted")

func unmount(path string) error {
	for i := 0; ; i++ {
		err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err == nil {
			if i == maxUnmounts {
				return fmt.Errorf("unmount %s: %w after %d unmounts", path, ErrStillMounted, maxUnmounts)
			}
			continue
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not (or no longer) a mount point
		}
		return fmt.Errorf("unmount %s: %w", path, err)
	}
}
