package cni

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// waitGone waits until none of the network interfaces names exists in
// this process's network namespace, or ctx ends. A pod's veth pair goes
// when the kernel tears its network namespace down, a little after the
// last pin and process let go of it: a Detach waits for that, so that
// what a DEL leaves to the kernel is gone too when it returns. It listens
// to the kernel's link events, checking after each; it subscribes before
// the first check, so no removal is missed.
func waitGone(ctx context.Context, names []string) error {
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
		if err := ctx.Err(); err != nil || wait <= 0 {
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

// hostVeths returns, of a result's interfaces, those on the host's side
// that go with the pod: no sandbox, and not a bridge (which stays).
func hostVeths(names []string) []string {
	var out []string
	for _, name := range names {
		if name == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join("/sys/class/net", name, "bridge")); err == nil {
			continue
		}
		out = append(out, name)
	}
	return out
}
