package cni

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stopStragglers kills the processes whose environment names the
// container, and only those: not one of a container whose ID starts the
// same, nor one where the ID is another variable's value.
func TestStopStragglers(t *testing.T) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	id := hex.EncodeToString(b)
	start := func(env ...string) *exec.Cmd {
		cmd := exec.Command("sleep", "600")
		cmd.Env = env
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	first := start("CNI_CONTAINERID="+id, "CNI_COMMAND=ADD")
	last := start("PATH=/usr/bin:/bin", "CNI_COMMAND=ADD", "CNI_CONTAINERID="+id)
	longer := start("CNI_CONTAINERID=" + id + "0")
	other := start("NOT_CNI_CONTAINERID=" + id)
	value := start("X=CNI_CONTAINERID=" + id)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, stopStragglers(ctx, id))
	for _, cmd := range []*exec.Cmd{first, last} {
		// Killed, and reaped: the test is their parent.
		assert.ErrorIs(t, cmd.Process.Signal(syscall.Signal(0)), os.ErrProcessDone)
	}
	for _, cmd := range []*exec.Cmd{longer, other, value} {
		assert.NoError(t, cmd.Process.Signal(syscall.Signal(0)), "still runs: %v", cmd.Env)
	}
	assert.Empty(t, withEnv([]byte("CNI_CONTAINERID="+id+"\x00")))
}

// The cost of a Detach after an unfinished ADD, over and above the DEL:
// one read of every process's environment.
func BenchmarkStopStragglers(b *testing.B) {
	for b.Loop() {
		if err := stopStragglers(context.Background(), "0000000000000000000000000000000000000000000000000000000000000000"); err != nil {
			b.Fatal(err)
		}
	}
}
