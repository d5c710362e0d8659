package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/owndir"
	"github.com/podsmith/podsmith/internal/pidfd"
)

func lookPath(name string) (string, error) { return exec.LookPath(name) }

// command returns the runtime command for args, after --root and the
// global args.
func (r *Runtime) command(args ...string) *exec.Cmd {
	return exec.Command(r.bin, append(append([]string{"--root", r.root}, r.args...), args...)...)
}

// run runs a runtime command that leaves no process behind (everything
// but create), "<op> <id> <args>", and returns its standard output.
func (r *Runtime) run(ctx context.Context, op, id string, args ...string) ([]byte, error) {
	cmd := r.command(append([]string{op, id}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := startAndWait(ctx, cmd); err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		return nil, &Error{Runtime: r.name, Op: op, ID: id, Err: err, Output: cleanOutput(append(stderr.Bytes(), stdout.Bytes()...))}
	}
	return stdout.Bytes(), nil
}

// dir is the runtime's directory of container id.
func (r *Runtime) dir(id string) string { return filepath.Join(r.root, id) }

// has reports whether the runtime has a directory for container id.
func (r *Runtime) has(id string) (bool, error) {
	_, err := os.Lstat(r.dir(id))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (r *Runtime) state(ctx context.Context, id string) (specs.State, error) {
	ok, err := r.has(id)
	if err != nil {
		return specs.State{}, &Error{Runtime: r.name, Op: "state", ID: id, Err: err}
	}
	if !ok {
		return specs.State{}, fmt.Errorf("%s: %w", shortID(id), ErrNotExist)
	}
	out, err := r.run(ctx, "state", id)
	if err != nil {
		// Deleted meanwhile, or a create cut short before the runtime
		// wrote its state: for the caller, no container.
		if gone, _ := r.gone(id); gone {
			return specs.State{}, fmt.Errorf("%s: %w", shortID(id), ErrNotExist)
		}
		return specs.State{}, err
	}
	var st specs.State
	if err := json.Unmarshal(out, &st); err != nil {
		return specs.State{}, &Error{Runtime: r.name, Op: "state", ID: id, Err: err}
	}
	return st, nil
}

// gone reports whether the runtime has no usable container id: no
// directory, or one without a state file (runc's state.json, crun's
// status), as a create killed early leaves.
func (r *Runtime) gone(id string) (bool, error) {
	ok, err := r.has(id)
	if err != nil || !ok {
		return !ok, err
	}
	for _, f := range []string{"state.json", "status"} {
		if _, err := os.Lstat(filepath.Join(r.dir(id), f)); err == nil {
			return false, nil
		}
	}
	return true, nil
}

func (r *Runtime) kill(ctx context.Context, id string, sig syscall.Signal) error {
	if ok, err := r.has(id); err == nil && !ok {
		return nil
	}
	if r.signalKept(id, sig) {
		return nil
	}
	_, err := r.run(ctx, "kill", id, strconv.Itoa(int(sig)))
	if err == nil {
		return nil
	}
	// Gone, or its process has exited: nothing to signal.
	st, serr := r.state(ctx, id)
	if errors.Is(serr, ErrNotExist) || serr == nil && (st.Status == specs.StateStopped || !alive(st.Pid)) {
		return nil
	}
	return err
}

// signalKept signals the process Create made through the pidfd kept of it,
// which names that process and no other, and reports whether it did: no
// runtime process to run (runc's takes some 5 ms). A process that has
// exited counts as signalled.
func (r *Runtime) signalKept(id string, sig syscall.Signal) bool {
	r.mu.Lock()
	defer r.mu.Unlock() // Wait takes (and closes) the pidfd under this lock
	f := r.pidfds[id]
	if f == nil {
		return false
	}
	return pidfd.Signal(f, sig) == nil
}

func (r *Runtime) wait(ctx context.Context, id string) error {
	pf := r.takePidfd(id)
	if pf == nil {
		var err error
		if pf, err = r.findPidfd(ctx, id); pf == nil || err != nil {
			return err
		}
	}
	if err := pidfd.Wait(ctx, pf); err != nil {
		r.keepPidfd(id, pf) // still running: for the next Wait
		return &Error{Runtime: r.name, Op: "wait", ID: id, Err: err}
	}
	pidfd.Reap(pf)
	return pf.Close()
}

// findPidfd opens a pidfd of container id's running process, nil if it
// has none.
func (r *Runtime) findPidfd(ctx context.Context, id string) (*os.File, error) {
	st, err := r.state(ctx, id)
	if errors.Is(err, ErrNotExist) {
		return nil, nil
	}
	if err != nil || st.Pid <= 0 || st.Status == specs.StateStopped {
		return nil, err
	}
	pf, err := pidfd.Open(st.Pid)
	if errors.Is(err, unix.ESRCH) {
		return nil, nil
	}
	if err != nil {
		return nil, &Error{Runtime: r.name, Op: "wait", ID: id, Err: err}
	}
	// The PID was read before the pidfd was opened: asked again, the
	// runtime (which checks the process's start time) says whether the
	// pidfd is of the container's process or of a newer one with its PID.
	if st2, err := r.state(ctx, id); err != nil || st2.Pid != st.Pid || st2.Status == specs.StateStopped {
		pf.Close()
		return nil, nil
	}
	return pf, nil
}

// alive reports whether process pid exists and has not exited (a zombie
// has).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func (r *Runtime) delete(ctx context.Context, id string) error {
	gone, err := r.gone(id)
	if err != nil {
		return &Error{Runtime: r.name, Op: "delete", ID: id, Err: err}
	}
	if gone {
		// Nothing, or only what a create killed early left: the directory
		// without a state (and a cgroup, which the caller removes).
		if err := os.RemoveAll(r.dir(id)); err != nil {
			return &Error{Runtime: r.name, Op: "delete", ID: id, Err: err}
		}
		if pf := r.takePidfd(id); pf != nil {
			pidfd.Reap(pf)
			pf.Close()
		}
		return nil
	}
	_, err = r.run(ctx, "delete", id)
	if err == nil {
		if pf := r.takePidfd(id); pf != nil {
			pidfd.Reap(pf)
			pf.Close()
		}
		return nil
	}
	if gone, _ := r.gone(id); gone {
		return r.delete(ctx, id) // deleted meanwhile
	}
	return err
}

// mkRoot makes the runtime's state dir, and refuses one that is not a
// directory of its own, or whose parent is a symlink (planted there, it
// would take the runtime's state elsewhere).
func (r *Runtime) mkRoot() error {
	if st, err := os.Lstat(filepath.Dir(r.root)); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		return &owndir.Error{Path: filepath.Dir(r.root), Reason: "is a symlink"}
	}
	return owndir.Make(r.root, 0o700)
}

// devNull opens /dev/null for a command's standard streams.
func devNull() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_RDWR|unix.O_CLOEXEC, 0) }

// emptyFile is what /dev/null is to a container, without being the
// node's: a memfd sealed at size 0, which reads as end of file and refuses
// writes (EPERM), so nothing a container writes is kept anywhere.
func emptyFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("podsmith-null", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	return os.NewFile(uintptr(fd), "null"), nil
}

// anonymousFile is a file with no name, in dir, for a runtime's error
// output: the container inherits it, and nothing need remove it.
func anonymousFile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		f, err := os.CreateTemp(dir, ".create-*.log")
		if err != nil {
			return nil, err
		}
		_ = os.Remove(f.Name())
		return f, nil
	}
	return os.NewFile(uintptr(fd), "create.log"), nil
}

// createCommand is the runtime's create of id; its process gets SIGKILL
// if its parent dies first.
// createCommand is the runtime's create, or with run its run --detach
// (create and start in one process).
func (r *Runtime) createCommand(id, bundle string, run bool) *exec.Cmd {
	op := []string{"create"}
	if run {
		op = []string{"run", "--detach"}
	}
	cmd := r.command(append(op, "--bundle", bundle, "--pid-file", filepath.Join(bundle, PidFile), id)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// readPid reads the PID the runtime wrote into the bundle.
func readPid(bundle string) (int, error) {
	b, err := os.ReadFile(filepath.Join(bundle, PidFile))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a PID", filepath.Join(bundle, PidFile), b)
	}
	return pid, nil
}

func (r *Runtime) create(ctx context.Context, id, bundle string, run bool) (int, error) {
	fail := func(err error, out []byte) (int, error) {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		return 0, &Error{Runtime: r.name, Op: opName(run), ID: id, Err: err, Output: cleanOutput(out)}
	}
	if err := r.mkRoot(); err != nil {
		return fail(err, nil)
	}
	if r.mon != "" {
		return r.createMonitored(ctx, id, bundle, run)
	}
	// The container's stdin and stdout: an empty file of its own, never
	// the node's /dev/null, which crun before 1.23 chowns to the root of
	// a container's user namespace (an unprivileged host user, who could
	// then change its mode through the descriptor).
	stdio, err := emptyFile()
	if err != nil {
		return fail(err, nil)
	}
	defer stdio.Close()
	errOut, err := anonymousFile(r.root)
	if err != nil {
		return fail(err, nil)
	}
	defer errOut.Close()
	cmd := r.createCommand(id, bundle, run)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio, stdio, errOut
	if err := startAndWait(ctx, cmd); err != nil {
		out, _ := readAll(errOut)
		return fail(err, out)
	}
	pid, err := readPid(bundle)
	if err != nil {
		return fail(err, nil)
	}
	r.adopt(id, pid)
	return pid, nil
}

// opName names a create or a run in errors.
func opName(run bool) string {
	if run {
		return "run"
	}
	return "create"
}

// adopt keeps a pidfd of a container's process that Create (or Run) just
// made: it waits for Start, or runs as a child of this process or of a
// monitor, which has not reaped it, so the PID is still its own.
func (r *Runtime) adopt(id string, pid int) {
	if pf, err := pidfd.Open(pid); err == nil {
		r.keepPidfd(id, pf)
	}
}

// startAndWait runs cmd, killing it when ctx ends. It forks from a
// goroutine locked to its OS thread until cmd has exited: the kernel ties
// PR_SET_PDEATHSIG to the thread that forked, and Go ends a thread that a
// goroutine leaves locked, which would kill a create half-way.
func startAndWait(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			done <- err
			return
		}
		stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
		err := cmd.Wait()
		stop()
		done <- err
	}()
	return <-done
}

func readAll(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err := b.ReadFrom(f)
	return b.Bytes(), err
}
