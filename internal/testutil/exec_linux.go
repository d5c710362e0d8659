package testutil

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ExecWatcher reports exec events of the whole host through the kernel's
// process-events connector (netlink, CAP_NET_ADMIN), so that a test can
// wait for a container's init to have exec'd its program, without polling.
// Runtimes return from `start` when they have told the init to exec, not
// when it has: until then /proc/PID shows the runtime, not the pause.
type ExecWatcher struct {
	fd int
}

// Constants of linux/connector.h and linux/cn_proc.h.
const (
	cnIdxProc          = 1
	cnValProc          = 1
	procCnMcastListen  = 1
	procEventExec      = 0x00000002
	nlmsgHdrLen        = 16
	cnMsgLen           = 20
	procEventHeaderLen = 16 // what, cpu, timestamp_ns
)

// NewExecWatcher starts listening. Create it before the event to wait for
// (before `runtime start`), and Close it when done.
func NewExecWatcher() (*ExecWatcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc, Pid: uint32(os.Getpid())}); err != nil {
		// Another socket of this process may hold the port id; let the
		// kernel pick one.
		if err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("proc connector bind: %w", err)
		}
	}
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[16:], cnIdxProc)
	ne.PutUint32(msg[20:], cnValProc)
	ne.PutUint16(msg[32:], 4)
	ne.PutUint32(msg[36:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector listen: %w", err)
	}
	return &ExecWatcher{fd: fd}, nil
}

// Close stops listening.
func (w *ExecWatcher) Close() error { return unix.Close(w.fd) }

// Wait blocks until process pid has exec'd a new program, or timeout
// passes (a safety net against a hung test, not a synchronisation delay).
func (w *ExecWatcher) Wait(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("process %d did not exec within %s", pid, timeout)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(w.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return fmt.Errorf("proc connector: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("proc connector: %w", err)
		}
		for _, m := range msgs {
			d := m.Data
			if len(d) < cnMsgLen+procEventHeaderLen+8 {
				continue
			}
			ev := d[cnMsgLen:]
			ne := binary.NativeEndian
			if ne.Uint32(ev[0:]) != procEventExec {
				continue
			}
			if tgid := ne.Uint32(ev[procEventHeaderLen+4:]); int(tgid) == pid {
				return nil
			}
		}
	}
}

// Result is what a command run by Run said, and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs cmd with its output captured, and returns the output and the
// exit code; a command that cannot be run at all fails t.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", cmd, err)
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}
