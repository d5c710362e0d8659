package atomicfile

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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

// fakeWrite replaces write with fn for the test.
func fakeWrite(t *testing.T, fn func(fd int, p []byte) (int, error)) {
	t.Cleanup(SetWrite(fn))
}

// writeResult is what a fake write(2) returns.
type writeResult struct {
	n   int
	err error
}

func TestWriteAllShortWritesAndErrors(t *testing.T) {
	data := []byte("0123456789")
	tests := []struct {
		name string
		// results are what the fake write(2) returns, in turn; a positive
		// count takes that many bytes.
		results []writeResult
		want    string
		wantErr error
	}{
		{name: "short writes continue", results: []writeResult{{3, nil}, {1, nil}, {6, nil}}, want: "0123456789"},
		{name: "EINTR is retried", results: []writeResult{{-1, syscall.EINTR}, {4, nil}, {-1, syscall.EINTR}, {6, nil}}, want: "0123456789"},
		{name: "ENOSPC after a short write", results: []writeResult{{4, nil}, {-1, syscall.ENOSPC}}, want: "0123", wantErr: syscall.ENOSPC},
		{name: "EAGAIN is an error, not a spin", results: []writeResult{{-1, syscall.EAGAIN}}, wantErr: syscall.EAGAIN},
		{name: "no progress is an error", results: []writeResult{{0, nil}}, wantErr: io.ErrShortWrite},
		{name: "a count beyond the data is an error", results: []writeResult{{11, nil}}, wantErr: io.ErrShortWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			calls := 0
			fakeWrite(t, func(_ int, p []byte) (int, error) {
				require.Less(t, calls, len(tt.results), "more write calls than expected")
				r := tt.results[calls]
				calls++
				if r.n > 0 && r.n <= len(p) {
					got = append(got, p[:r.n]...)
				}
				return r.n, r.err
			})
			err := writeAll(-1, data)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.want, string(got))
			assert.Equal(t, len(tt.results), calls)
		})
	}
}

func TestCreateNewWriteErrorRemovesFile(t *testing.T) {
	calls := 0
	fakeWrite(t, func(fd int, p []byte) (int, error) {
		calls++
		if calls > 1 {
			return -1, syscall.ENOSPC // as write(2) returns it: -1
		}
		return unix.Write(fd, p[:1]) // a short write
	})
	p := filepath.Join(t.TempDir(), "hosts")
	err := CreateNew(p, []byte("127.0.0.1 localhost\n"), Options{})
	require.ErrorIs(t, err, syscall.ENOSPC)
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "write", pe.Op)
	assert.NoFileExists(t, p)
}
