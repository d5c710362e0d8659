package linkwait

import (
	"context"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Gone waits until none of the network interfaces names exists in this
// process's network namespace, or ctx ends (its error). It
// listens to the kernel's link events, checking after each; it subscribes
// before the first check, so no removal is missed.
func Gone(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		left := false
		for _, name := range names {
			if _, err := net.InterfaceByName(name); err == nil {
				left = true
				break
			}
		}
		if !left {
			return nil
		}
		wait := time.Second
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if wait <= 0 {
			return context.DeadlineExceeded
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait.Milliseconds())+1)
		if err != nil && err != unix.EINTR {
			return err
		}
		if n > 0 {
			// The events say only that some link changed: drain them,
			// and look again.
			_, _, _ = unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		}
	}
}
