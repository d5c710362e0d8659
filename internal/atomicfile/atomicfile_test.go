package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteFile(t *testing.T) {
	for _, sync := range []bool{false, true} {
		dir := t.TempDir()
		p := filepath.Join(dir, "resolv.conf")
		require.NoError(t, WriteFile(p, []byte("nameserver 10.0.0.1\n"), Options{Sync: sync}))
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, "nameserver 10.0.0.1\n", string(b))
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o644), st.Mode().Perm())

		// Replacing keeps the requested mode and leaves no temp file.
		require.NoError(t, WriteFile(p, []byte("x"), Options{Perm: 0o600, Sync: sync}))
		b, err = os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, "x", string(b))
		st, err = os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, ents, 1)
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	dir := t.TempDir()
	err := WriteFile(filepath.Join(dir, "no", "file"), []byte("x"), Options{})
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestWriteFileRenameFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should go: rename(file, dir) fails.
	target := filepath.Join(dir, "target")
	require.NoError(t, os.Mkdir(target, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(target, "keep"), nil, 0o644))
	err := WriteFile(target, []byte("x"), Options{})
	require.Error(t, err)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "only the original entry remains")
	assert.Equal(t, "target", ents[0].Name())
}

func TestSyncDirMissing(t *testing.T) {
	require.ErrorIs(t, SyncDir(filepath.Join(t.TempDir(), "none")), fs.ErrNotExist)
}

func TestCreateNew(t *testing.T) {
	old := syscall.Umask(0o077) // the mode is exact whatever the umask
	defer syscall.Umask(old)
	for _, sync := range []bool{false, true} {
		dir := t.TempDir()
		p := filepath.Join(dir, "hosts")
		require.NoError(t, CreateNew(p, []byte("127.0.0.1 localhost\n"), Options{Sync: sync}))
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1 localhost\n", string(b))
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o644), st.Mode().Perm())

		// An existing file is an error, and stays as it was.
		require.ErrorIs(t, CreateNew(p, []byte("x"), Options{Perm: 0o600, Sync: sync}), fs.ErrExist)
		b, err = os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1 localhost\n", string(b))
	}
	require.ErrorIs(t, CreateNew(filepath.Join(t.TempDir(), "no", "file"), nil, Options{}), fs.ErrNotExist)
}

func TestSyncFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
	require.NoError(t, SyncFile(p))
	require.ErrorIs(t, SyncFile(p+".none"), fs.ErrNotExist)
}
