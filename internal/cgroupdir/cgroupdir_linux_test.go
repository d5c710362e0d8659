package cgroupdir_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/cgroupdir"
	"github.com/podsmith/podsmith/internal/testutil"
)

func TestRemove(t *testing.T) {
	testutil.RequireRoot(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	parent := fmt.Sprintf("/podsmith-test-%x", b)
	dir := parent + "/pause"
	dirs, err := testutil.CgroupDirs(dir)
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	t.Cleanup(func() { assert.NoError(t, testutil.RemoveCgroup(dir, parent)) })
	for _, d := range dirs {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	require.NoError(t, cgroupdir.Remove(context.Background(), dir))
	for _, d := range dirs {
		assert.NoDirExists(t, d)
		assert.DirExists(t, filepath.Dir(d), "the parent stays")
	}
	require.NoError(t, cgroupdir.Remove(context.Background(), dir), "twice")
	// A parent with a child in it is busy.
	for _, d := range dirs {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	require.ErrorIs(t, cgroupdir.Remove(context.Background(), parent), cgroupdir.ErrBusy)
	require.Error(t, cgroupdir.Remove(context.Background(), "relative"))
}

// A process left in the cgroup (the init of a create killed half-way) is
// killed, waited for, and the cgroup removed.
func TestRemoveKillsWhatIsLeftInIt(t *testing.T) {
	testutil.RequireRoot(t)
	require.NoError(t, testutil.BecomeSubreaper())
	var b [4]byte
	_, _ = rand.Read(b[:])
	parent := fmt.Sprintf("/podsmith-test-%x", b)
	dir := parent + "/pause"
	dirs, err := testutil.CgroupDirs(dir)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, testutil.RemoveCgroup(dir, parent)) })
	cmd := exec.Command("sleep", "600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	moved := 0
	for _, d := range dirs {
		require.NoError(t, os.MkdirAll(d, 0o755))
		// (cpuset takes no process before its cpus and mems are set.)
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(fmt.Sprint(cmd.Process.Pid)), 0o644); err == nil {
			moved++
		}
	}
	require.Positive(t, moved)
	require.NoError(t, cgroupdir.Remove(context.Background(), dir))
	for _, d := range dirs {
		assert.NoDirExists(t, d)
	}
	require.Error(t, <-exited, "killed")
}
