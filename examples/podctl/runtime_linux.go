package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ociRuntime drives runc or crun (or a wrapper with the same command
// line), with its state under podctl's run root.
type ociRuntime struct {
	name string // as given: "runc", "crun" or a path
	bin  string
	root string // the runtime's --root
	own  string // podctl's files of each sandbox: <own>/<id>/
}

func newRuntime(name, runRoot string) *ociRuntime {
	base := filepath.Base(name)
	return &ociRuntime{
		name: name,
		bin:  name,
		root: filepath.Join(runRoot, "runtime", base),
		own:  filepath.Join(runRoot, "podctl"),
	}
}

// run runs the runtime with args after --root; its output goes to a file,
// never a pipe (a container inherits the runtime's standard streams).
func (r *ociRuntime) run(args ...string) error {
	bin, err := exec.LookPath(r.bin)
	if err != nil {
		return fmt.Errorf("runtime %s: %w", r.name, err)
	}
	out, err := os.CreateTemp("", "podctl-runtime-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(bin, append([]string{"--root", r.root}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(r.name), args[0], err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// runtimeState is the part of `runtime state` podctl uses.
type runtimeState struct {
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

// exists reports whether the runtime has a container id: both runc and
// crun keep a directory per container under their root.
func (r *ociRuntime) exists(id string) bool {
	_, err := os.Stat(filepath.Join(r.root, id))
	return err == nil
}

// state returns the container's state, nil if there is no container.
func (r *ociRuntime) state(id string) (*runtimeState, error) {
	if !r.exists(id) {
		return nil, nil
	}
	bin, err := exec.LookPath(r.bin)
	if err != nil {
		return nil, fmt.Errorf("runtime %s: %w", r.name, err)
	}
	out, err := exec.Command(bin, "--root", r.root, "state", id).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("%s state: %w", filepath.Base(r.name), err)
	}
	var st runtimeState
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("%s state: %w", filepath.Base(r.name), err)
	}
	return &st, nil
}

// running reports whether the container's process runs.
func (r *ociRuntime) running(id string) (bool, error) {
	st, err := r.state(id)
	if err != nil || st == nil {
		return false, err
	}
	return st.Status == "running" && alive(st.Pid), nil
}

// alive reports whether process pid exists and is not a zombie.
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

// start creates and starts the pause container of the bundle. The create
// runs in a monitor process that outlives podctl (see monitorMain).
func (r *ociRuntime) start(id, bundle string) error {
	dir := filepath.Join(r.own, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(r.root, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rd.Close()
	log, err := os.OpenFile(filepath.Join(dir, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		wr.Close()
		return err
	}
	defer log.Close()
	cmd := exec.Command(self, monitorCommand, r.bin, r.root, id, bundle, dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{wr} // fd 3: the monitor's report
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return fmt.Errorf("monitor: %w", err)
	}
	wr.Close()
	line, _ := bufio.NewReader(rd).ReadString('\n')
	pidText, ok := strings.CutPrefix(strings.TrimSpace(line), "ok ")
	if _, err := strconv.Atoi(pidText); !ok || err != nil {
		// The monitor failed and exits: reap it, and undo what create did.
		_ = cmd.Wait()
		_ = r.stop(id)
		if msg, ok := strings.CutPrefix(strings.TrimSpace(line), "err "); ok {
			return errors.New(msg)
		}
		return fmt.Errorf("monitor of %s died without a word (see %s)", id[:13], log.Name())
	}
	// The monitor lives on, holding the pause; stop waits for it by PID.
	if err := os.WriteFile(filepath.Join(dir, "monitor.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return err
	}
	_ = cmd.Process.Release()
	if err := r.run("start", id); err != nil {
		_ = r.stop(id)
		return err
	}
	return nil
}

// monitorPID returns the PID of the monitor holding the sandbox's pause, 0
// if none.
func (r *ociRuntime) monitorPID(id string) int {
	b, err := os.ReadFile(filepath.Join(r.own, id, "monitor.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(b))
	return pid
}

// stop kills the container's process, waits for it and its monitor to exit
// and deletes the container (runc 1.1's `delete -f` would sleep 100 ms
// first). A container that is gone, or never was, is stopped.
func (r *ociRuntime) stop(id string) error {
	st, err := r.state(id)
	if err != nil {
		return err
	}
	if st != nil {
		if st.Status != "stopped" && alive(st.Pid) {
			if err := r.run("kill", id, "KILL"); err != nil && alive(st.Pid) {
				return err
			}
			if err := waitExit(st.Pid); err != nil {
				return err
			}
		}
		if err := r.run("delete", id); err != nil {
			return err
		}
	}
	if pid := r.monitorPID(id); pid > 0 {
		if err := waitExit(pid); err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
		_ = os.Remove(filepath.Join(r.own, id, "monitor.pid"))
	}
	return nil
}

// forget removes podctl's files of a sandbox.
func (r *ociRuntime) forget(id string) error {
	if err := os.RemoveAll(filepath.Join(r.own, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// waitExit waits for a process that is not podctl's child to exit (or turn
// into a zombie for its parent to reap), through a pidfd: no polling.
func waitExit(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// monitorCommand is the hidden command podctl runs itself as, to hold a
// pause process.
const monitorCommand = "__monitor"

// monitorMain is the monitor: a child subreaper that runs `runtime create`
// (so the container's process becomes its child when the runtime exits),
// tells podctl on fd 3 "ok <pid>" or "err <message>", then waits for the
// pause to exit and reaps it. Its args: runtime binary, runtime root, ID,
// bundle, podctl's dir of the sandbox.
func monitorMain(args []string) int {
	report := os.NewFile(3, "report")
	say := func(format string, a ...any) {
		fmt.Fprintf(report, format+"\n", a...)
		report.Close()
	}
	if len(args) != 5 {
		say("err monitor: want 5 arguments, got %d", len(args))
		return 2
	}
	bin, root, id, bundle, dir := args[0], args[1], args[2], args[3], args[4]
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		say("err monitor: subreaper: %v", err)
		return 1
	}
	pidFile := filepath.Join(dir, "pause.pid")
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		say("err monitor: %v", err)
		return 1
	}
	errOut, err := os.CreateTemp(dir, "create-*.log")
	if err != nil {
		say("err monitor: %v", err)
		return 1
	}
	defer os.Remove(errOut.Name())
	cmd := exec.Command(bin, "--root", root, "create", "--bundle", bundle, "--pid-file", pidFile, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, errOut
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(errOut.Name())
		say("err %s create: %v: %s", filepath.Base(bin), err, strings.ReplaceAll(strings.TrimSpace(string(msg)), "\n", "; "))
		return 1
	}
	b, err := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil {
		say("err monitor: pid file: %v", errors.Join(err, perr))
		return 1
	}
	say("ok %d", pid)
	devnull.Close()
	// Reap the pause (and anything else the runtime left to us) until the
	// pause is gone.
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || got == pid {
			return 0
		}
	}
}
