package oci

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// monitorArgs is what a monitor is told, as its one argument (JSON).
type monitorArgs struct {
	Bin    string   `json:"bin"`
	Name   string   `json:"name"`
	Root   string   `json:"root"`
	Args   []string `json:"args,omitempty"`
	ID     string   `json:"id"`
	Bundle string   `json:"bundle"`
	Run    bool     `json:"run,omitempty"` // run --detach, not create
}

// The monitor's protocol. Its fd 3 is its report to the caller: one line,
// "ok <pid>" or "err <message>". Its fd 4 is the caller's lifeline: the
// caller writes ack once it has the report; end of file before that means
// the caller is gone, and the monitor undoes the create.
const (
	reportFd = 3
	lifeFd   = 4
	ack      = 'k'
)

// createMonitored runs the create in a monitor (see Options.Monitor).
func (r *Runtime) createMonitored(ctx context.Context, id, bundle string, run bool) (int, error) {
	fail := func(err error, out string) (int, error) {
		return 0, &Error{Runtime: r.name, Op: opName(run), ID: id, Err: err, Output: out}
	}
	arg, err := json.Marshal(monitorArgs{Bin: r.bin, Name: r.name, Root: r.root, Args: r.args, ID: id, Bundle: bundle, Run: run})
	if err != nil {
		return fail(err, "")
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return fail(err, "")
	}
	defer reportR.Close()
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		reportW.Close()
		return fail(err, "")
	}
	defer lifeW.Close()
	null, err := devNull()
	if err != nil {
		reportW.Close()
		lifeR.Close()
		return fail(err, "")
	}
	defer null.Close()
	cmd := exec.Command(r.mon, MonitorCommand, string(arg))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.ExtraFiles = []*os.File{reportW, lifeR}
	// Its own session: a terminal's signals to the caller's process group
	// must not reach the pause's keeper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	reportW.Close()
	lifeR.Close()
	if err != nil {
		return fail(fmt.Errorf("monitor: %w", err), "")
	}
	// The monitor outlives a short-lived caller; a long-lived one reaps
	// it when it exits.
	go func() { _ = cmd.Wait() }()
	reports := make(chan monitorReport, 1)
	go func() {
		var rep monitorReport
		if err := json.NewDecoder(io.LimitReader(reportR, 64<<10)).Decode(&rep); err != nil {
			rep = monitorReport{Error: "the monitor exited without a report"}
		}
		reports <- rep
	}()
	var rep monitorReport
	select {
	case rep = <-reports:
	case <-ctx.Done():
		// Closing the lifeline makes the monitor kill the create and delete
		// what it made; its report says when it is done.
		lifeW.Close()
		rep = <-reports
	}
	if rep.Error != "" || rep.Pid <= 0 {
		err := errors.New(cmp.Or(rep.Error, "the monitor reported no PID"))
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", err, cerr)
		}
		return fail(err, rep.Output)
	}
	r.adopt(id, rep.Pid)
	if _, err := lifeW.Write([]byte{ack}); err != nil {
		return fail(fmt.Errorf("monitor: %w", err), "")
	}
	return rep.Pid, nil
}

// monitorReport is the monitor's one report to its caller.
type monitorReport struct {
	Pid    int    `json:"pid,omitempty"`
	Error  string `json:"error,omitempty"`
	Output string `json:"output,omitempty"`
}

// MonitorCommand is the first argument with which an embedder's binary is
// re-executed as a monitor (see Options.Monitor and MonitorMain).
const MonitorCommand = "__podsmith-oci-monitor"

// MonitorMain is the monitor: call it from main when os.Args[1] is
// MonitorCommand, with os.Args[2:], and exit with what it returns:
//
//	if len(os.Args) > 1 && os.Args[1] == oci.MonitorCommand {
//		os.Exit(oci.MonitorMain(os.Args[2:]))
//	}
//
// It becomes a child subreaper, runs the runtime's create (so that the
// container's process becomes its child when the runtime exits), reports
// to its caller, and then reaps the container's process when it exits. If
// its caller goes away before it has the report, it kills the create and
// deletes what it made.
func MonitorMain(args []string) int {
	report := os.NewFile(reportFd, "report")
	life := os.NewFile(lifeFd, "lifeline")
	say := func(rep monitorReport) {
		if report != nil {
			_ = json.NewEncoder(report).Encode(rep)
			report.Close()
		}
	}
	var m monitorArgs
	if len(args) != 1 || json.Unmarshal([]byte(args[0]), &m) != nil || report == nil || life == nil {
		say(monitorReport{Error: "monitor: bad arguments"})
		return 2
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		say(monitorReport{Error: fmt.Sprintf("monitor: subreaper: %v", err)})
		return 1
	}
	r := &Runtime{name: m.Name, bin: m.Bin, root: m.Root, args: m.Args, pidfds: map[string]*os.File{}}
	// The lifeline: the caller's ack, or the end of file if it is gone.
	acked := make(chan bool, 1)
	go func() {
		var b [1]byte
		n, _ := life.Read(b[:])
		acked <- n == 1 && b[0] == ack
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		pid int
		err error
	}
	created := make(chan result, 1)
	go func() {
		pid, err := r.create(ctx, m.ID, m.Bundle, m.Run)
		created <- result{pid, err}
	}()
	var res result
	callerGone := false
	select {
	case res = <-created:
	case <-acked: // before the report there is nothing to ack: the caller is gone
		callerGone = true
		cancel()
		res = <-created
	}
	if res.err != nil || callerGone {
		r.undo(m.ID)
		rep := monitorReport{Error: "the caller went away"}
		var e *Error
		if errors.As(res.err, &e) {
			rep = monitorReport{Error: e.Err.Error(), Output: e.Output}
		} else if res.err != nil {
			rep.Error = res.err.Error()
		}
		say(rep)
		return 1
	}
	say(monitorReport{Pid: res.pid})
	if !<-acked {
		r.undo(m.ID) // the caller died before it knew of the container
		return 1
	}
	// Reap the container's process (and whatever else the runtime left
	// to us) until it is gone.
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || got == res.pid {
			return 0
		}
	}
}

// undo removes what a create made, for a monitor whose caller is gone.
func (r *Runtime) undo(id string) {
	ctx := context.Background()
	_ = r.kill(ctx, id, unix.SIGKILL)
	_ = r.wait(ctx, id)
	_ = r.delete(ctx, id)
}
