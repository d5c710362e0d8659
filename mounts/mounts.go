package mounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/platform"
)

// Shm sizes.
const (
	// DefaultShmSize is the size of a pod's /dev/shm when none is asked
	// for, as in Docker, CRI-O and containerd: 64 MiB.
	DefaultShmSize int64 = 64 << 20
	// DefaultMaxShmSize caps the size a pod may ask for when the caller
	// sets no cap. tmpfs pages cost nothing until written (and are then
	// charged to the writer's memory cgroup), so the cap only stops absurd
	// requests.
	DefaultMaxShmSize int64 = 8 << 30
)

// ErrNotSupported is returned by mount operations on systems other than
// Linux.
var ErrNotSupported = platform.ErrNotSupported

// ErrInvalid is matched (errors.Is) by every validation error of this
// package.
var ErrInvalid = errors.New("mounts: invalid")

// SizeError reports a shm size that cannot be used.
type SizeError struct {
	Size   int64 // the size asked for, in bytes
	Max    int64 // the cap in force
	Reason string
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("mounts: shm size %d: %s", e.Size, e.Reason)
}

// Is makes a SizeError match ErrInvalid.
func (e *SizeError) Is(target error) bool { return target == ErrInvalid }

// ShmSize returns the size a shm tmpfs gets for a request: 0 means
// DefaultShmSize; other sizes are rounded up to a multiple of the page size
// and must be positive and at most max (0 means DefaultMaxShmSize).
func ShmSize(requested, max int64) (int64, error) {
	if max <= 0 {
		max = DefaultMaxShmSize
	}
	if requested < 0 {
		return 0, &SizeError{Size: requested, Max: max, Reason: "must not be negative"}
	}
	if requested == 0 {
		requested = DefaultShmSize
	}
	page := int64(os.Getpagesize())
	if requested > max {
		return 0, &SizeError{Size: requested, Max: max, Reason: fmt.Sprintf("exceeds the cap of %d bytes", max)}
	}
	size := (requested + page - 1) / page * page
	if size > max {
		return 0, &SizeError{Size: requested, Max: max, Reason: fmt.Sprintf("rounded up to the page size (%d) exceeds the cap of %d bytes", page, max)}
	}
	return size, nil
}

// ShmOptions are the settings of a shm tmpfs.
type ShmOptions struct {
	// Size in bytes; 0 means DefaultShmSize. It is checked with ShmSize.
	Size int64
	// Max caps Size; 0 means DefaultMaxShmSize.
	Max int64
	// MountLabel is the SELinux context of the tmpfs ("" for none).
	MountLabel string
	// Owner owns the tmpfs's root (nil: root): a pod's root, mapped to
	// the host by its user namespace.
	Owner *Owner
}

// Owner is the host user and group that own a mount.
type Owner struct{ UID, GID uint32 }

// MountShm creates the directory path (its parent must exist; an existing
// empty directory is used as is) and mounts the shm tmpfs on it. It returns
// the size mounted. On failure it removes the directory if it made it. It
// refuses a path that is already a mount point.
func MountShm(path string, opts ShmOptions) (int64, error) {
	size, err := ShmSize(opts.Size, opts.Max)
	if err != nil {
		return 0, err
	}
	if err := mountShm(path, size, opts.MountLabel, opts.Owner); err != nil {
		return 0, err
	}
	return size, nil
}

// Unmount lazily unmounts whatever is mounted on path (peeling stacked
// mounts) and removes the directory: the undo of MountShm and of
// BindReadOnly. A path that is not mounted, or does not exist, is success.
func Unmount(path string) error { return unmountAndRemove(path) }

// BindReadOnly makes the directory dst (its parent must exist) and
// bind-mounts the directory src on it read-only, nosuid and nodev (not
// noexec: it is meant for the shared pause rootfs, whose binary must run).
// On failure it undoes what it did. It refuses a dst that is already a
// mount point.
func BindReadOnly(src, dst string) error { return bindReadOnly(src, dst) }

// RemoveTree removes the directory tree dir without ever entering a mount
// point: a mount left inside (an unmount that failed, or one nobody
// expected) is an error, not a reason to delete what is on the mounted
// file system. A dir that is gone is success; a symlink (or file) at dir
// is removed, never what it points to.
func RemoveTree(dir string) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return os.Remove(dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			mounted, err := isMountPoint(p)
			if err != nil && !errors.Is(err, ErrNotSupported) {
				return err
			}
			if mounted {
				return fmt.Errorf("mounts: %s is still a mount point", p)
			}
			if err := RemoveTree(p); err != nil {
				return err
			}
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// IsMountPoint reports whether path is a mount point (including a bind
// mount of a file, such as a netns pin). A missing path is not a mount
// point.
func IsMountPoint(path string) (bool, error) { return isMountPoint(path) }

// Options of the bind mounts that podsmith puts into the pause container's
// spec. The sandbox's files are read-only inside it; nothing on them needs
// to execute, be a device or be setuid.
var (
	readOnlyBindOptions = []string{"bind", "ro", "nosuid", "nodev", "noexec"}
	shmBindOptions      = []string{"bind", "rw", "nosuid", "nodev", "noexec"}
)

// ReadOnlyBind returns the spec entry that bind-mounts the host file or
// directory src read-only at dst in the container.
func ReadOnlyBind(src, dst string) specs.Mount {
	return specs.Mount{
		Destination: dst,
		Type:        "bind",
		Source:      src,
		Options:     append([]string(nil), readOnlyBindOptions...),
	}
}

// ShmBind returns the spec entry that bind-mounts the shm directory src (a
// sandbox's tmpfs, or the host's /dev/shm for a host-IPC pod) at /dev/shm.
func ShmBind(src string) specs.Mount {
	return specs.Mount{
		Destination: "/dev/shm",
		Type:        "bind",
		Source:      src,
		Options:     append([]string(nil), shmBindOptions...),
	}
}
