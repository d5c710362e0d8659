// Package regfile opens files that must be regular files: pod configs,
// seccomp profiles, and the journals and specs podsmith keeps in its own
// dirs. Anything else at the path is refused with a *NotRegularError,
// before it is opened: a FIFO (whose open waits for a writer, and whose
// read never ends), a device (whose open may act: a tape rewinds, a
// watchdog arms), a directory, a socket, and, where the caller says so, a
// symlink (planted in a dir of our own, it would have us read or write its
// target).
package regfile

import (
	"errors"
	"io/fs"
	"os"
)

// ErrNotRegular is matched by every *NotRegularError.
var ErrNotRegular = errors.New("not a regular file")

// NotRegularError says that a path is not a regular file, and what it is.
type NotRegularError struct {
	Kind string // "a FIFO", "a device", "a directory", "a symlink", ...
}

func (e *NotRegularError) Error() string { return "not a regular file (" + e.Kind + ")" }

// Is makes a NotRegularError match ErrNotRegular.
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// Open opens the regular file at path with flag (os.O_RDONLY or
// os.O_RDWR; the descriptor is close-on-exec and blocking). With follow
// false a symlink at path is refused, as "a symlink", instead of followed.
// A path that cannot be looked at gives an *fs.PathError (one that is not
// there matches fs.ErrNotExist).
func Open(path string, flag int, follow bool) (*os.File, error) { return open(path, flag, follow) }

// kind names what a file mode says a file is.
func kind(mode fs.FileMode) string {
	switch mode.Type() {
	case fs.ModeDir:
		return "a directory"
	case fs.ModeNamedPipe:
		return "a FIFO"
	case fs.ModeSocket:
		return "a socket"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	case fs.ModeSymlink:
		return "a symlink"
	}
	return "a special file"
}
