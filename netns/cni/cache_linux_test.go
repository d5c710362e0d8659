package cni_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns/cni"
)

// TestRestoreCacheOnAFullDisk: putting libcni's cached result back on a
// full file system fails without leaving half a result (which libcni would
// take for no result), and a result still there is kept as it is.
func TestRestoreCacheOnAFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	dir := filepath.Join(root, "results")
	require.NoError(t, os.Mkdir(dir, 0o755))
	testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}})
	const page = 4096
	testutil.MountTmpfs(t, dir, 8*page)
	result := bytes.Repeat([]byte(`{"kind":"cniCacheV1"}`), 2*page/20) // two pages and a bit

	kept := filepath.Join(dir, "kept")
	require.NoError(t, os.WriteFile(kept, result, 0o600))
	fill := testutil.FillTo(t, dir, 0)
	require.NoError(t, cni.RestoreCache(kept, result), "a result still there needs no room")
	b, err := os.ReadFile(kept)
	require.NoError(t, err)
	assert.Equal(t, result, b)

	lost := filepath.Join(dir, "lost")
	require.ErrorIs(t, cni.RestoreCache(lost, result), unix.ENOSPC)
	assert.NoFileExists(t, lost)

	require.NoError(t, os.Remove(fill))
	testutil.FillTo(t, dir, 2*page)
	require.ErrorIs(t, cni.RestoreCache(lost, result), unix.ENOSPC, "the first pages fit, not the rest")
	assert.NoFileExists(t, lost)
	assert.Equal(t, int64(2*page), testutil.FreeBytes(t, dir))
}
