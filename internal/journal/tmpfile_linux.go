package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// openAnonymous opens a new file in dir that has no name yet (O_TMPFILE):
// it can be locked and filled before linkAnonymous gives it one, so no
// other process ever sees it unlocked or half written. ErrUnsupported if
// the file system cannot (then a named temporary file is used).
func openAnonymous(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		// EISDIR: a kernel without O_TMPFILE; EOPNOTSUPP: a file system
		// without it (NFS, older overlayfs).
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return nil, errors.ErrUnsupported
		}
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, "(new journal)")), nil
}

// linkAnonymous gives f, opened by openAnonymous, the name path, which
// must not exist.
func linkAnonymous(f *os.File, path string) error {
	fd := int(f.Fd())
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		// No /proc: AT_EMPTY_PATH works with CAP_DAC_READ_SEARCH.
		if unix.Linkat(fd, "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH) == nil {
			return nil
		}
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
	}
	return nil
}
