package pidfd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Open opens a pidfd of process pid, non-blocking, in Go's poller. A
// process that does not exist (any more) is an error matching
// unix.ESRCH.
func Open(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return os.NewFile(uintptr(fd), "pidfd"), nil
}

// Signal sends sig to the pidfd's process. A process that has exited
// counts as signalled.
func Signal(f *os.File, sig syscall.Signal) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	if serr != nil && !errors.Is(serr, unix.ESRCH) {
		return fmt.Errorf("pidfd_send_signal %v: %w", sig, serr)
	}
	return nil
}

// Wait waits, in Go's poller, until the pidfd is readable (its process
// has exited: a zombie has), or ctx ends.
func Wait(ctx context.Context, f *os.File) error {
	// A kept pidfd may carry the deadline of a Wait that gave up.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			perr = err
			return true
		}
		return n > 0
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(err, perr)
}

// Reap collects the exit status of the pidfd's process if it has exited
// and is this process's child (as a subreaper's orphans are); otherwise
// it does nothing.
func Reap(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		var info unix.Siginfo
		_ = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
	})
}

// Kill sends SIGKILL to the pidfd's process, waits until it has exited
// or ctx ends, and reaps it if it is this process's child.
func Kill(ctx context.Context, f *os.File) error {
	if err := Signal(f, unix.SIGKILL); err != nil {
		return err
	}
	if err := Wait(ctx, f); err != nil {
		return err
	}
	Reap(f)
	return nil
}
