package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listen replaces a stale socket, refuses a live one, and never removes a
// file that is not a socket (a --listen of /dev/null removed the node's
// /dev/null).
func TestListen(t *testing.T) {
	dir := t.TempDir()

	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("keep"), 0o644))
	_, err := listen(file)
	assert.ErrorContains(t, err, "exists and is not a socket")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "keep", string(b))

	// Even a symlink to a stale socket is not ours to remove.
	target := filepath.Join(dir, "target.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: target, Net: "unix"})
	require.NoError(t, err)
	old.SetUnlinkOnClose(false)
	require.NoError(t, old.Close())
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(target, link))
	_, err = listen(link)
	assert.ErrorContains(t, err, "exists and is not a socket")
	_, err = os.Lstat(link)
	assert.NoError(t, err, "the symlink stays")

	sock := filepath.Join(dir, "sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	require.NoError(t, err)
	stale.SetUnlinkOnClose(false)
	require.NoError(t, stale.Close())
	lis, err := listen(sock)
	require.NoError(t, err, "a stale socket is replaced")

	_, err = listen(sock)
	assert.ErrorContains(t, err, "another server listens there")
	require.NoError(t, lis.Close())
}

// A --listen the shim cannot serve on is refused before anything is made:
// no state, run or netns dir.
func TestRunRefusesABadListenFirst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("keep"), 0o644))
	err := run([]string{"--listen", file, "--root", filepath.Join(dir, "state"),
		"--run-root", filepath.Join(dir, "run"), "--netns-dir", filepath.Join(dir, "netns")})
	assert.ErrorContains(t, err, "exists and is not a socket")
	for _, d := range []string{"state", "run", "netns"} {
		assert.NoDirExists(t, filepath.Join(dir, d))
	}
}
