package cni

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/testutil"
)

// waitGone returns once a veth whose peer's namespace is torn down is
// gone, and gives up with its context while one stays.
func TestWaitGone(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinaries(t, "ip")
	var b [4]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	host, ns := "pstg"+tag, "pstg-"+tag
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %v: %s", args, out)
	}
	run("netns", "add", ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		_ = exec.Command("ip", "link", "del", host).Run()
	})
	run("link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
	bridge := "pstb" + tag
	run("link", "add", bridge, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	assert.Equal(t, []string{host}, hostVeths([]string{bridge, host, ""}), "a bridge stays: no waiting for it")

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, waitGone(short, []string{host}), context.DeadlineExceeded, "the veth stays while its peer's namespace lives")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- waitGone(ctx, []string{host})
	}()
	run("netns", "del", ns) // the kernel removes the pair on its own, later
	require.NoError(t, <-done)
	out, _ := exec.Command("ip", "link", "show", host).CombinedOutput()
	assert.Contains(t, string(out), "does not exist")
	require.NoError(t, waitGone(context.Background(), []string{host}), "gone already")
}
