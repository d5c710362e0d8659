// Package flock holds podsmith's two uses of flock(2): holding a directory
// exclusively for a moment (Dir), and waiting for a lock under a context
// (Lock). flock(2) cannot be interrupted, so Lock polls with growing
// pauses; it is meant for locks held for milliseconds to seconds (a Build,
// a CNI ADD), not for hot paths.
package flock

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/regfile"
)

// Dir opens the directory path and takes an exclusive flock on it; unlock
// releases it. It waits as long as it takes (use it for moments).
func Dir(path string) (unlock func(), err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	return func() { unix.Close(fd) }, nil
}

// Lock takes the lock how (unix.LOCK_SH or LOCK_EX) on fd, waiting until
// ctx is done. With grace > 0, a done ctx still waits, up to grace, while
// the lock is held only shared: by looks (Held), which hold it for an
// instant, not by a holder of the exclusive lock, which ends the wait at
// once. busy, if set, runs after each attempt at a lock another holds.
func Lock(ctx context.Context, fd, how int, grace time.Duration, busy func()) error {
	wait := 200 * time.Microsecond
	var graceEnd time.Time
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		if busy != nil {
			busy()
		}
		if ctx.Err() != nil {
			if graceEnd.IsZero() {
				graceEnd = time.Now().Add(grace)
			}
			if !time.Now().Before(graceEnd) || !onlyShared(fd) {
				return ctx.Err()
			}
			time.Sleep(wait)
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// onlyShared reports whether the lock that stopped an exclusive flock on
// fd is held only shared.
func onlyShared(fd int) bool {
	if unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) != nil {
		return false
	}
	_ = unix.Flock(fd, unix.LOCK_UN)
	return true
}

// Held reports whether another holds a lock on the regular file at path:
// it looks by taking the lock shared for an instant (a look, which Lock's
// grace waits out). Nothing else is locked: not a file that is not there,
// not a symlink (never followed), not a FIFO or a device (never opened).
func Held(path string) bool {
	f, err := regfile.Open(path, os.O_RDONLY, false)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK)
}

// Gated takes, waiting until ctx is done, a lock of two files that many
// hold shared (how unix.LOCK_SH) or one exclusively (unix.LOCK_EX), across
// processes, without overlapping shared holders starving the exclusive
// one: every taker first passes gate (shared for an instant, or, for the
// exclusive one, closed for as long as it holds the lock), then takes
// lock. Both files must exist. unlock releases it.
func Gated(ctx context.Context, gate, lock string, how int) (unlock func(), err error) {
	g, err := os.Open(gate)
	if err != nil {
		return nil, err
	}
	if err := Lock(ctx, int(g.Fd()), how, 0, nil); err != nil {
		g.Close()
		return nil, err
	}
	l, err := os.Open(lock)
	if err == nil {
		if err = Lock(ctx, int(l.Fd()), how, 0, nil); err != nil {
			l.Close()
		}
	}
	if err != nil || how == unix.LOCK_SH {
		g.Close() // a shared taker is through
	}
	if err != nil {
		return nil, err
	}
	if how == unix.LOCK_SH {
		return func() { l.Close() }, nil
	}
	return func() { l.Close(); g.Close() }, nil
}
