package cni

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/pidfd"
)

// stopStragglers kills what an earlier ADD of the container left running,
// and waits until it has exited: the plugins of a caller that died
// mid-ADD (they run on, orphaned), or the IPAM plugin, iptables and the
// like that a plugin killed at the ADD's deadline had started. A DEL that
// runs before they are gone cannot release what they allocate after it.
//
// Every process CNI starts for the container carries
// CNI_CONTAINERID=<id> in its environment: libcni sets it, and a plugin
// hands its environment on to the plugins it delegates to. The ID is the
// Builder's sandbox ID, 64 random hex digits, no other runtime's.
func stopStragglers(ctx context.Context, containerID string) error {
	needle := []byte("CNI_CONTAINERID=" + containerID + "\x00")
	for {
		pids, err := withEnvCtx(ctx, needle)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		// One round kills what it found; a child forked meanwhile is
		// found by the next.
		for _, pid := range pids {
			f, err := pidfd.Open(pid)
			if errors.Is(err, unix.ESRCH) {
				continue // exited
			}
			if err != nil {
				return err
			}
			// The PID was read before the pidfd was opened: its
			// environment, read again, says whether the pidfd names the
			// same process. A zombie's reads as empty: it has exited.
			if !hasEnv(pid, needle) {
				f.Close()
				continue
			}
			err = pidfd.Kill(ctx, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("process %d, left by an earlier ADD: %w", pid, err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// withEnvCtx is withEnv, given up when ctx ends: reading a process's
// environment takes its memory map's lock, which a process stuck in a page
// fault (on a hung NFS mount, say) holds for as long as it is stuck. The
// scan left behind ends when that process does.
func withEnvCtx(ctx context.Context, needle []byte) ([]int, error) {
	found := make(chan []int, 1)
	go func() { found <- withEnv(needle) }()
	select {
	case pids := <-found:
		return pids, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("reading the processes' environments: %w", ctx.Err())
	}
}

// withEnv returns the processes, other than this one, whose environment
// holds needle (a NUL-terminated "KEY=value").
func withEnv(needle []byte) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if hasEnv(pid, needle) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hasEnv reports whether process pid's environment holds needle. One that
// is gone or cannot be read (a kernel thread's is empty) does not.
func hasEnv(pid int, needle []byte) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	if bytes.HasPrefix(env, needle) {
		return true
	}
	return bytes.Contains(env, append([]byte{0}, needle...))
}
