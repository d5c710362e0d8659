package oci_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/cgroupdir"
	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/oci"
	"github.com/podsmith/podsmith/spec"
)

func TestMain(m *testing.M) {
	// The test binary is its own monitor (Options.Monitor).
	if len(os.Args) > 1 && os.Args[1] == oci.MonitorCommand {
		os.Exit(oci.MonitorMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func randomID(t testing.TB) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fixture is a runtime with a pause bundle, under a leak check that covers
// the runtime's state dir and a cgroup parent of the test's own.
type fixture struct {
	rt     *oci.Runtime
	bundle string
	cgroup string // the pause's
	lc     *testutil.LeakCheck
}

func newFixture(t *testing.T, name string, monitor bool) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	opts := testutil.RuntimeOptions(t, name)
	if monitor {
		opts.Monitor = os.Args[0]
	}
	rt, err := oci.New(opts)
	require.NoError(t, err)

	root := t.TempDir()
	parent := "/podsmith-oci-test-" + randomID(t)[:8]
	t.Cleanup(func() { assert.NoError(t, testutil.RemoveCgroup(parent, parent)) })
	lc := testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root, rt.Root()}, Skeleton: []string{rt.Root()}, CgroupParent: parent})
	rootfs, err := spec.PreparePauseRootfs(filepath.Join(t.TempDir(), "rootfs"), spec.PauseOptions{})
	require.NoError(t, err)
	bundle := filepath.Join(root, "bundle")
	require.NoError(t, os.Mkdir(bundle, 0o700))
	s, err := spec.New(spec.WithRoot(rootfs.Path, true), spec.WithArgs(rootfs.Args...),
		spec.WithCgroupsPath(parent+"/pause"), spec.WithOOMScoreAdj(0), spec.WithHostname("oci-test"))
	require.NoError(t, err)
	require.NoError(t, spec.Save(bundle, s, spec.SaveOptions{}))
	// (A create killed half-way may leave runc's temporary pid file.)
	t.Cleanup(func() { _ = os.RemoveAll(bundle) })
	return &fixture{rt: rt, bundle: bundle, cgroup: parent + "/pause", lc: lc}
}

func TestLifecycle(t *testing.T) {
	for _, name := range []string{"runc", "crun"} {
		for _, monitor := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/monitor=%v", name, monitor), func(t *testing.T) {
				f := newFixture(t, name, monitor)
				ctx := context.Background()
				id := randomID(t)
				_, err := f.rt.State(ctx, id)
				require.ErrorIs(t, err, oci.ErrNotExist)
				require.ErrorIs(t, err, fs.ErrNotExist)

				pid, err := f.rt.Create(ctx, id, f.bundle)
				require.NoError(t, err)
				f.lc.TrackProcess(pid)
				st, err := f.rt.State(ctx, id)
				require.NoError(t, err)
				assert.Equal(t, specs.StateCreated, st.Status)
				assert.Equal(t, pid, st.Pid)
				monitorPid := 0
				if monitor {
					monitorPid = parentOf(t, pid)
					assert.NotEqual(t, os.Getpid(), monitorPid, "the monitor holds the pause")
					f.lc.TrackProcess(monitorPid)
				}

				require.NoError(t, f.rt.Start(ctx, id))
				st, err = f.rt.State(ctx, id)
				require.NoError(t, err)
				assert.Equal(t, specs.StateRunning, st.Status)

				// Wait gives up with its context while the pause runs.
				short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				err = f.rt.Wait(short, id)
				cancel()
				require.ErrorIs(t, err, context.DeadlineExceeded)

				require.NoError(t, f.rt.Kill(ctx, id, syscall.SIGKILL))
				require.NoError(t, f.rt.Wait(ctx, id))
				st, err = f.rt.State(ctx, id)
				require.NoError(t, err)
				assert.Equal(t, specs.StateStopped, st.Status)
				require.NoError(t, f.rt.Kill(ctx, id, syscall.SIGKILL), "kill of a stopped container")
				require.NoError(t, f.rt.Delete(ctx, id))
				if !monitor {
					assert.NoFileExists(t, fmt.Sprintf("/proc/%d/stat", pid), "Wait reaped the pause, this subreaper's child")
				} else {
					require.NoError(t, testutil.WaitExit(monitorPid), "the monitor reaps the pause and exits")
				}

				// Gone: every removal succeeds, State says so.
				require.NoError(t, f.rt.Kill(ctx, id, syscall.SIGKILL))
				require.NoError(t, f.rt.Wait(ctx, id))
				require.NoError(t, f.rt.Delete(ctx, id))
				_, err = f.rt.State(ctx, id)
				require.ErrorIs(t, err, oci.ErrNotExist)
			})
		}
	}
}

// Run creates and starts in one runtime process; the rest of the life is
// Create's.
func TestRun(t *testing.T) {
	for _, name := range []string{"runc", "crun"} {
		for _, monitor := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/monitor=%v", name, monitor), func(t *testing.T) {
				f := newFixture(t, name, monitor)
				ctx := context.Background()
				id := randomID(t)
				pid, err := f.rt.Run(ctx, id, f.bundle)
				require.NoError(t, err)
				f.lc.TrackProcess(pid)
				monitorPid := 0
				if monitor {
					monitorPid = parentOf(t, pid)
					f.lc.TrackProcess(monitorPid)
				}
				st, err := f.rt.State(ctx, id)
				require.NoError(t, err)
				assert.Equal(t, specs.StateRunning, st.Status)
				assert.Equal(t, pid, st.Pid)
				require.NoError(t, f.rt.Kill(ctx, id, syscall.SIGKILL))
				require.NoError(t, f.rt.Wait(ctx, id))
				require.NoError(t, f.rt.Delete(ctx, id))
				if monitor {
					require.NoError(t, testutil.WaitExit(monitorPid), "the monitor reaps the pause and exits")
				}
				_, err = f.rt.State(ctx, id)
				require.ErrorIs(t, err, oci.ErrNotExist)
				_, err = f.rt.Run(ctx, id, filepath.Join(t.TempDir(), "no-bundle"))
				var oe *oci.Error
				require.ErrorAs(t, err, &oe)
				assert.Equal(t, "run", oe.Op)
				require.NoError(t, f.rt.Delete(ctx, id))
			})
		}
	}
}

// Kill signals the process Create made through its pidfd, running no
// runtime process; a Runtime that did not create the container (a
// restarted process) asks the runtime.
func TestKillThroughThePidfd(t *testing.T) {
	f := newFixture(t, "runc", false)
	log := filepath.Join(t.TempDir(), "calls")
	script := filepath.Join(t.TempDir(), "runc")
	runc, err := exec.LookPath("runc")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho \"$*\" >> "+log+"\nexec "+runc+" \"$@\"\n"), 0o755))
	rt, err := oci.New(oci.Options{Runtime: script, Root: f.rt.Root()})
	require.NoError(t, err)
	calls := func() string {
		b, err := os.ReadFile(log)
		require.NoError(t, err)
		return string(b)
	}
	ctx := context.Background()
	for _, kept := range []bool{true, false} {
		id := randomID(t)
		pid, err := rt.Create(ctx, id, f.bundle)
		require.NoError(t, err)
		f.lc.TrackProcess(pid)
		require.NoError(t, rt.Start(ctx, id))
		killer := rt
		if !kept {
			killer, err = oci.New(oci.Options{Runtime: script, Root: f.rt.Root()})
			require.NoError(t, err)
		}
		require.NoError(t, killer.Kill(ctx, id, syscall.SIGKILL))
		if kept {
			assert.NotContains(t, calls(), " kill ", "no runtime process for the kill")
		} else {
			assert.Contains(t, calls(), " kill "+id)
		}
		require.NoError(t, rt.Wait(ctx, id))
		require.NoError(t, rt.Delete(ctx, id))
	}
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var ppid int
	_, err = fmt.Sscan(fields[1], &ppid)
	require.NoError(t, err)
	return ppid
}

// A create's context ended at moments spread over the create: whatever it
// left, Kill, Wait and Delete remove (and a monitor undoes it on its
// own).
func TestCreateCutShort(t *testing.T) {
	for _, name := range []string{"runc", "crun"} {
		for _, monitor := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/monitor=%v", name, monitor), func(t *testing.T) {
				f := newFixture(t, name, monitor)
				for i := range 12 {
					id := randomID(t)
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i)*5*time.Millisecond)
					pid, err := f.rt.Create(ctx, id, f.bundle)
					cancel()
					monitorPid := 0
					if err == nil {
						f.lc.TrackProcess(pid)
						if monitor {
							monitorPid = parentOf(t, pid)
						}
					}
					bg := context.Background()
					require.NoError(t, errors.Join(f.rt.Kill(bg, id, syscall.SIGKILL), f.rt.Wait(bg, id), f.rt.Delete(bg, id)))
					if monitorPid > 0 {
						require.NoError(t, testutil.WaitExit(monitorPid), "the monitor reaps the pause and exits")
					}
					_, err = f.rt.State(bg, id)
					require.ErrorIs(t, err, oci.ErrNotExist)
					// The cgroup of a create killed half-way is the
					// caller's to remove (sandbox does, by its journal).
					require.NoError(t, cgroupdir.Remove(context.Background(), f.cgroup))
				}
			})
		}
	}
}

func TestErrors(t *testing.T) {
	_, err := oci.New(oci.Options{Runtime: "/nonexistent/runc"})
	var e *oci.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "find", e.Op)
	assert.Equal(t, `runc find: exec: "/nonexistent/runc": stat /nonexistent/runc: no such file or directory`, err.Error())
	require.ErrorIs(t, err, fs.ErrNotExist)

	_, err = oci.New(oci.Options{Runtime: "sh", Root: "relative"})
	require.Error(t, err)

	// A runtime that fails says what it said, cut to printable text, and
	// no dangling colon when it said nothing.
	dir := t.TempDir()
	loud := filepath.Join(dir, "loud")
	require.NoError(t, os.WriteFile(loud, []byte("#!/bin/sh\nprintf 'time=\"x\" level=error msg=\"no \\\\\"runtime\\\\\" today\"\\n\\033[31mred\\n' >&2\nexit 1\n"), 0o755))
	quiet := filepath.Join(dir, "quiet")
	require.NoError(t, os.WriteFile(quiet, []byte("#!/bin/sh\nexit 1\n"), 0o755))
	ctx := context.Background()
	for _, c := range []struct{ bin, want string }{
		{loud, `loud start 0123456789ab: exit status 1: no "runtime" today; ?[31mred`},
		{quiet, `quiet start 0123456789ab: exit status 1`},
	} {
		rt, err := oci.New(oci.Options{Runtime: c.bin, Root: filepath.Join(dir, "root")})
		require.NoError(t, err)
		err = rt.Start(ctx, "0123456789abcdef")
		require.ErrorAs(t, err, &e)
		assert.Equal(t, c.want, err.Error())
		var ee *exec.ExitError
		assert.ErrorAs(t, err, &ee)
	}
	rt, err := oci.New(oci.Options{Runtime: quiet, Root: filepath.Join(dir, "root")})
	require.NoError(t, err)
	for _, id := range []string{"", ".", "..", "a/b", "a\x00b"} {
		require.Error(t, rt.Start(ctx, id), "%q", id)
	}
	assert.NoDirExists(t, filepath.Join(dir, "root"), "New and refused calls make nothing")
}
