package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// A FIFO, a symlink to a device and a symlink to a real journal, planted
// among the journals: List, Find and Recover neither block nor read them,
// show each as a sandbox whose journal cannot be read, and go on with the
// others.
func TestPlantedJournalsDoNotBlock(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	good, err := b.Build(ctx, podConfig("good"))
	require.NoError(t, err)
	dir := filepath.Join(b.Options().StateDir, "journals")
	copyOf := filepath.Join(t.TempDir(), "journal")
	data, err := os.ReadFile(filepath.Join(dir, good.ID))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(copyOf, data, 0o600))
	fifo, zero, link := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	require.NoError(t, unix.Mkfifo(filepath.Join(dir, fifo), 0o600))
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, zero)))
	require.NoError(t, os.Symlink(copyOf, filepath.Join(dir, link)))

	done := make(chan struct{})
	go func() {
		defer close(done)
		list, err := b.List()
		require.NoError(t, err)
		bad := map[string]bool{}
		for _, sb := range list {
			if sb.Err != nil {
				bad[sb.ID] = true
			} else {
				assert.Equal(t, good.ID, sb.ID)
			}
		}
		assert.Equal(t, map[string]bool{fifo: true, zero: true, link: true}, bad)
		found, err := b.Find(good.Name)
		if assert.NoError(t, err) {
			assert.Equal(t, good.ID, found.ID)
		}
		_, err = b.Find(link)
		assert.Error(t, err)
		_, _ = b.Recover(ctx) // the planted ones are errors; the good one is left alone
		again, err := b.Find(good.ID)
		if assert.NoError(t, err) {
			assert.Equal(t, sandbox.StateBuilt, again.State)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a look at the journals never ends") // a failure, not a hung test
	}
	after, err := os.ReadFile(copyOf)
	require.NoError(t, err)
	assert.Equal(t, data, after, "nothing written through the symlink")
	require.NoError(t, good.Destroy(ctx))
}
