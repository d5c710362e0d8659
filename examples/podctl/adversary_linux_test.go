package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
)

// The tests here replay what an outside attack on podctl found: kill -9 at
// any moment, rm -f racing with a start, signals, hanging plugins, planted
// symlinks, FIFOs and corrupt journals.

// command is the podctl command line of e (its global flags and args),
// not yet started.
func (e *env) command(args ...string) *exec.Cmd {
	global := []string{
		"--root", filepath.Join(e.root, "state"), "--run-root", filepath.Join(e.root, "run"),
		"--netns-dir", filepath.Join(e.root, "netns"), "--runtime", e.runtime, "--cgroup-parent", e.cgroupParent,
		"--cni-conf-dir", e.cniConfDir,
	}
	if len(e.cniBinDirs) > 0 {
		global = append(global, "--cni-bin-dir", strings.Join(e.cniBinDirs, ","))
	}
	return exec.Command(podctlBin, append(global, args...)...)
}

// podFile writes a pod config named name into a temp dir and returns its
// path: the pod has its own network namespace, or with hostNet the
// node's.
func podFile(t *testing.T, name string, hostNet bool) string {
	t.Helper()
	ns := ""
	if hostNet {
		ns = `,"linux":{"security_context":{"namespace_options":{"network":2}}}`
	}
	p := filepath.Join(t.TempDir(), name+".json")
	require.NoError(t, os.WriteFile(p, fmt.Appendf(nil, `{"metadata":{"name":%q,"namespace":"default","uid":"uid-%s"}%s}`, name, name, ns), 0o644))
	return p
}

// list returns podctl ls -o json.
func (e *env) list() []view {
	e.t.Helper()
	var list []view
	require.NoError(e.t, json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &list))
	return list
}

// reapOrphans waits for every child process of this test (a subreaper:
// monitors whose podctl died are reparented to it) to exit, and reaps it;
// one that is still alive after timeout is a leak.
func reapOrphans(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, pid := range children(t) {
		fd, err := unix.PidfdOpen(pid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue
		}
		require.NoError(t, err)
		ms := max(int(time.Until(deadline).Milliseconds()), 0)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		unix.Close(fd)
		require.NoError(t, err)
		if n == 0 {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("process %d is still alive: %q", pid, cmd)
			continue
		}
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
	}
}

// children lists the child processes of this process.
func children(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parentPID(pid) == self {
			out = append(out, pid)
		}
	}
	return out
}

// TestKilledRunsLeaveNothingAfterRecover kills `podctl run` with SIGKILL at
// moments spread over a whole run (before, during and after the runtime's
// create and start). No sandbox may then be "notready" with a live pause:
// each is ready (the run finished) or needs cleanup, and `podctl recover`
// removes every one that needs it, pause and all.
func TestKilledRunsLeaveNothingAfterRecover(t *testing.T) {
	e := newEnv(t, "runc")
	const runs = 40
	for i := range runs {
		cmd := e.command("run", podFile(t, fmt.Sprintf("killed-%d", i), false))
		require.NoError(t, cmd.Start())
		// The moment of the kill, not a wait for something: 0 to 117 ms,
		// a run taking about 100 ms here, most of it in the runtime's
		// create.
		time.Sleep(time.Duration(i) * 3 * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	var ready, unfinished int
	for _, v := range e.list() {
		switch v.State {
		case stateReady:
			ready++
		case stateNeedsCleanup:
			unfinished++
		default:
			t.Errorf("sandbox %s is %s: a killed run leaves it ready or needing cleanup", v.Name, v.State)
		}
	}
	t.Logf("%d runs: %d ready, %d needing cleanup", runs, ready, unfinished)
	out := e.ok("recover")
	assert.Equal(t, unfinished, strings.Count(out, "destroyed "), out)
	for _, v := range e.list() {
		assert.Equal(t, stateReady, v.State, "recover leaves the ready ones")
		e.ok("rm", "-f", v.ID)
	}
	assert.Empty(t, e.list())
	reapOrphans(t, 10*time.Second)
	assert.Empty(t, e.lc.Leaked())
	ents, err := os.ReadDir(filepath.Join(e.root, "run", "runtime", "runc"))
	require.NoError(t, err)
	assert.Empty(t, ents, "no container left in the runtime")
}

// slowRuntime is a runtime wrapper whose create tells the test (through a
// FIFO) that it began, then takes its time.
func slowRuntime(t *testing.T, e *env) (fifo string) {
	t.Helper()
	dir := t.TempDir()
	fifo = filepath.Join(dir, "creating")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	// Named runc, as the leak check's skeleton names the runtime's state
	// dir by the runtime's base name.
	wrapper := filepath.Join(dir, "runc")
	require.NoError(t, os.WriteFile(wrapper, fmt.Appendf(nil, `#!/bin/sh
case " $* " in
*" create "*|*" run "*) echo creating > %q; sleep 0.3 ;;
esac
exec %q "$@"
`, fifo, e.runtime), 0o755))
	e.runtime = wrapper
	return fifo
}

// awaitCreate blocks until the slow runtime's create began.
func awaitCreate(t *testing.T, fifo string) {
	t.Helper()
	b, err := os.ReadFile(fifo)
	require.NoError(t, err)
	require.Equal(t, "creating\n", string(b))
}

// TestRmForceRacingWithAStart removes a pod by name while the runtime
// creates its pause: rm -f waits for the build and removes it all, so it
// never reports success while a container is left.
func TestRmForceRacingWithAStart(t *testing.T) {
	e := newEnv(t, "runc")
	fifo := slowRuntime(t, e)
	for i := range 3 {
		name := fmt.Sprintf("race-%d", i)
		run := e.command("run", podFile(t, name, false))
		var out strings.Builder
		run.Stdout = &out
		require.NoError(t, run.Start())
		awaitCreate(t, fifo)
		r := e.podctl("rm", "-f", fmt.Sprintf("k8s_%s_default_uid-%s_0", name, name))
		assert.Equal(t, 0, r.Code, r.Stderr)
		require.NoError(t, run.Wait())
		assert.Empty(t, e.list(), "rm -f removed what the run built")
		ents, err := os.ReadDir(filepath.Join(e.root, "run", "runtime", "runc"))
		require.NoError(t, err)
		assert.Empty(t, ents, "no container left in the runtime")
	}
	reapOrphans(t, 10*time.Second)
	assert.Empty(t, e.lc.Leaked())
}

// TestTwoRmForceAtOnce: the loser finds the pod gone, which is success.
func TestTwoRmForceAtOnce(t *testing.T) {
	e := newEnv(t, "runc")
	for i := range 6 {
		id := strings.TrimSpace(e.ok("run", podFile(t, fmt.Sprintf("twice-%d", i), i%2 == 0)))
		var wg sync.WaitGroup
		results := make([]result, 2)
		for j := range results {
			wg.Go(func() { results[j] = e.podctl("rm", "-f", id) })
		}
		wg.Wait()
		for _, r := range results {
			assert.Equal(t, 0, r.Code, r.Stderr)
			assert.Empty(t, r.Stderr)
		}
	}
	assert.Empty(t, e.list())
	reapOrphans(t, 10*time.Second)
	assert.Empty(t, e.lc.Leaked())
}

// TestSignalDuringRun: SIGINT or SIGTERM while the runtime creates the
// pause rolls the build back; podctl exits 128+N with nothing left.
func TestSignalDuringRun(t *testing.T) {
	e := newEnv(t, "runc")
	fifo := slowRuntime(t, e)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		run := e.command("run", podFile(t, "signalled-"+strconv.Itoa(int(sig)), false))
		var stderr strings.Builder
		run.Stderr = &stderr
		require.NoError(t, run.Start())
		awaitCreate(t, fifo)
		require.NoError(t, run.Process.Signal(sig))
		err := run.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 128+int(sig), ee.ExitCode(), stderr.String())
		assert.Contains(t, stderr.String(), "context canceled")
		assert.Empty(t, e.list(), "rolled back")
	}
	reapOrphans(t, 10*time.Second)
	assert.Empty(t, e.lc.Leaked())
}

// TestCNITimeout: a plugin that hangs on ADD is cut off at --cni-timeout,
// or by a signal to podctl, and the run rolls back, the plugin killed.
func TestCNITimeout(t *testing.T) {
	e := newEnv(t, "runc")
	bin := t.TempDir()
	adding := filepath.Join(bin, "adding")
	require.NoError(t, unix.Mkfifo(adding, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "hang"), fmt.Appendf(nil, `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo $$ > %q; exec sleep 600 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
`, adding), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(e.cniConfDir, "10-hang.conflist"),
		[]byte(`{"cniVersion":"1.0.0","name":"hang","plugins":[{"type":"hang"}]}`), 0o644))
	e.cniBinDirs = []string{bin}
	// The plugin's PID, once its ADD began.
	plugin := func() int {
		b, err := os.ReadFile(adding)
		require.NoError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, err)
		return pid
	}

	start := time.Now()
	cmd := e.command("--cni-timeout", "500ms", "run", podFile(t, "hanging", false))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	pid := plugin()
	err := cmd.Wait()
	took := time.Since(start)
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 1, ee.ExitCode())
	assert.Contains(t, stderr.String(), "deadline exceeded")
	assert.Less(t, took, 30*time.Second, "cut off at the timeout, not after minutes")
	assert.False(t, alive(pid), "the plugin was killed")
	assert.Empty(t, e.list())

	cmd = e.command("run", podFile(t, "hanging", false))
	require.NoError(t, cmd.Start())
	pid = plugin()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err = cmd.Wait()
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 128+int(syscall.SIGTERM), ee.ExitCode())
	assert.False(t, alive(pid), "the plugin was killed, not left to init")
	assert.Empty(t, e.list())

	r := e.podctl("--cni-timeout", "0s", "ls")
	assert.Equal(t, 2, r.Code, "a timeout must be positive")
	reapOrphans(t, 10*time.Second)
	assert.Empty(t, e.lc.Leaked())
}

// TestNeedsCleanupIsFoundByName: a sandbox whose Destroy failed after its
// name was released is still found by its name, and rm -f says it failed
// until it can finish.
func TestNeedsCleanupIsFoundByName(t *testing.T) {
	e := newEnv(t, "runc")
	id := strings.TrimSpace(e.ok("run", "--no-start", podFile(t, "stuck", true)))
	v := e.inspect(id)
	// A mount nobody journaled, inside the bundle: the Destroy cannot
	// remove the bundle across it.
	extra := filepath.Join(v.BundleDir, "extra")
	require.NoError(t, os.Mkdir(extra, 0o700))
	require.NoError(t, unix.Mount("tmpfs", extra, "tmpfs", 0, "size=4k"))
	r := e.podctl("rm", "-f", v.Name)
	assert.Equal(t, 1, r.Code, "the Destroy failed")
	assert.Contains(t, r.Stderr, "still a mount point")
	list := e.list()
	require.Len(t, list, 1)
	assert.Equal(t, stateNeedsCleanup, list[0].State)
	assert.Equal(t, id, e.inspect(v.Name).ID, "found by name although its name link is gone")
	r = e.podctl("rm", "-f", v.Name)
	assert.Equal(t, 1, r.Code, "still in the way")
	require.NoError(t, unix.Unmount(extra, 0))
	e.ok("rm", "-f", v.Name)
	assert.Empty(t, e.list())
	assert.Empty(t, e.lc.Leaked())
}

// TestCorruptJournalDoesNotHideTheOthers: ls lists the healthy sandboxes
// and the broken one, as needing cleanup, with its error.
func TestCorruptJournalDoesNotHideTheOthers(t *testing.T) {
	e := newEnv(t, "runc")
	good := strings.TrimSpace(e.ok("run", "--no-start", podFile(t, "good", true)))
	bad := strings.TrimSpace(e.ok("run", "--no-start", podFile(t, "bad", true)))
	journals, err := filepath.Glob(filepath.Join(e.root, "state", "journals", bad))
	require.NoError(t, err)
	require.Len(t, journals, 1)
	saved, err := os.ReadFile(journals[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(journals[0], []byte("this is not a journal\n"), 0o600))
	list := e.list()
	require.Len(t, list, 2)
	states := map[string]view{}
	for _, v := range list {
		states[v.ID] = v
	}
	assert.Equal(t, stateNotReady, states[good].State)
	assert.Equal(t, stateNeedsCleanup, states[bad].State)
	assert.Contains(t, states[bad].Error, "corrupt")
	assert.Contains(t, e.ok("ls"), bad[:13])
	require.NoError(t, os.WriteFile(journals[0], saved, 0o600))
	e.ok("rm", good)
	e.ok("rm", bad)
	assert.Empty(t, e.lc.Leaked())
}

// TestConfigFromAFIFOAndStdin: a FIFO as the pod config is refused at
// once (it would block forever); "-" reads standard input.
func TestConfigFromAFIFOAndStdin(t *testing.T) {
	e := newEnv(t, "runc")
	fifo := filepath.Join(t.TempDir(), "pod.json")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	for _, cmd := range []string{"run", "plan"} {
		r := e.podctl(cmd, fifo)
		assert.Equal(t, 1, r.Code, cmd)
		assert.Contains(t, r.Stderr, "not a regular file", cmd)
	}
	plan := e.command("plan", "-")
	plan.Stdin = strings.NewReader(`{"metadata":{"name":"stdin","namespace":"default","uid":"u"},"hostname":"stdin"}`)
	r := testutil.Run(t, plan)
	require.Equal(t, 0, r.Code, r.Stderr)
	assert.Contains(t, r.Stdout, `"hostname": "stdin"`)
	bad := e.command("plan", "-")
	bad.Stdin = strings.NewReader(`{"metadata":`)
	r = testutil.Run(t, bad)
	assert.Equal(t, 1, r.Code)
	assert.Contains(t, r.Stderr, "(standard input)")
	assert.Empty(t, e.lc.Leaked())
}

// TestMissingRuntime: a runtime that is not there is a clear error, and
// nothing is built or made for it.
func TestMissingRuntime(t *testing.T) {
	e := newEnv(t, "runc")
	e.runtime = "/nonexistent"
	r := e.podctl("run", "../pods/basic.json")
	assert.Equal(t, 1, r.Code)
	assert.Equal(t, "podctl: nonexistent find: exec: \"/nonexistent\": stat /nonexistent: no such file or directory\n", r.Stderr)
	assert.NoDirExists(t, filepath.Join(e.root, "run", "runtime", "nonexistent"))
	assert.Empty(t, e.lc.Leaked())
}

// TestPlantedSymlinks: a symlink planted where podctl keeps its own
// directories is refused, and nothing lands where it points.
func TestPlantedSymlinks(t *testing.T) {
	for _, dir := range []string{"run/sandboxes", "run/runtime", "state/journals", "state/names", "state/pause", "state/network"} {
		t.Run(dir, func(t *testing.T) {
			e := newEnv(t, "runc")
			target := t.TempDir()
			link := filepath.Join(e.root, dir)
			require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o700))
			require.NoError(t, os.Symlink(target, link))
			r := e.podctl("run", podFile(t, "planted", false))
			assert.Equal(t, 1, r.Code)
			assert.Contains(t, r.Stderr, "symlink", r.Stderr)
			ents, err := os.ReadDir(target)
			require.NoError(t, err)
			assert.Empty(t, ents, "nothing written through the link")
			require.NoError(t, os.Remove(link))
			assert.Empty(t, e.list())
			assert.Empty(t, e.lc.Leaked())
		})
	}
}
