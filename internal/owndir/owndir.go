// Package owndir makes the directories podsmith keeps its own files in,
// and refuses one that is not its own: a symlink planted where a directory
// should be (every write below it would land where it points), something
// that is not a directory, or a directory of another user. podsmith checks
// each of its directories this way before it writes below it, and creates
// what it writes there without following links (O_EXCL, O_NOFOLLOW).
package owndir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNotOwn is matched by every *Error.
var ErrNotOwn = errors.New("not a directory of our own")

// Error says why a path is not a directory of our own.
type Error struct {
	Path   string
	Reason string // "is a symlink", ...
}

func (e *Error) Error() string { return e.Path + " " + e.Reason + ": not a directory of our own" }

// Is makes an Error match ErrNotOwn.
func (e *Error) Is(target error) bool { return target == ErrNotOwn }

// Make creates the directory path (and its missing parents) with mode,
// and checks it is a directory of ours: not a symlink, a directory, owned
// by this process's effective user. Parents that exist are not checked:
// they are the caller's (a symlinked /var/run is fine).
func Make(path string, mode fs.FileMode) error {
	if err := os.MkdirAll(path, mode); err != nil {
		st, lerr := os.Lstat(path)
		if lerr == nil && st.Mode()&fs.ModeSymlink != 0 {
			return &Error{Path: path, Reason: "is a symlink"}
		}
		return err
	}
	return Check(path)
}

// Check checks that path is a directory of ours (see Make). A path that
// does not exist is an error matching fs.ErrNotExist.
func Check(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		return &Error{Path: path, Reason: fmt.Sprintf("is a symlink (to %s)", target)}
	case !st.IsDir():
		return &Error{Path: path, Reason: "is not a directory"}
	}
	if uid, ok := owner(st); ok && uid != os.Geteuid() {
		return &Error{Path: path, Reason: fmt.Sprintf("belongs to user %d", uid)}
	}
	return nil
}
