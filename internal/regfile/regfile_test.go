package regfile_test

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/regfile"
)

// Only a regular file is opened; everything else is refused, typed, with
// what it is, and without blocking (a FIFO with no writer).
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, []byte("data"), 0o600))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(file, link))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer l.Close()

	for _, follow := range []bool{false, true} {
		f, err := regfile.Open(file, os.O_RDWR, follow)
		require.NoError(t, err)
		_, err = f.WriteString("DATA")
		assert.NoError(t, err, "opened for writing")
		require.NoError(t, f.Close())
	}
	f, err := regfile.Open(link, os.O_RDONLY, true)
	require.NoError(t, err, "followed when asked")
	require.NoError(t, f.Close())

	for path, kind := range map[string]string{
		link: "a symlink", fifo: "a FIFO", dir: "a directory", sock: "a socket", "/dev/zero": "a device",
	} {
		_, err := regfile.Open(path, os.O_RDONLY, false)
		var nr *regfile.NotRegularError
		if assert.ErrorAs(t, err, &nr, path) {
			assert.Equal(t, kind, nr.Kind, path)
			assert.ErrorIs(t, err, regfile.ErrNotRegular)
			assert.Equal(t, "not a regular file ("+kind+")", err.Error())
		}
	}
	_, err = regfile.Open(filepath.Join(dir, "none"), os.O_RDONLY, false)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}
