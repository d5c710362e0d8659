//go:build !linux

package regfile

import (
	"os"
	"syscall"
)

// open looks at the path (there is no O_PATH here), opens it without
// waiting for a FIFO's writer, and checks that what it opened is what it
// looked at.
func open(path string, flag int, follow bool) (*os.File, error) {
	look, how := os.Stat, flag|syscall.O_NONBLOCK
	if !follow {
		look, how = os.Lstat, how|syscall.O_NOFOLLOW
	}
	fi, err := look(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Kind: kind(fi.Mode())}
	}
	f, err := os.OpenFile(path, how, 0)
	if err != nil {
		return nil, err
	}
	if now, err := f.Stat(); err != nil || !os.SameFile(fi, now) {
		f.Close()
		return nil, &NotRegularError{Kind: "a file replaced while it was opened"}
	}
	return f, nil
}
