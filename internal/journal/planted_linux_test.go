package journal

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// What is planted where a journal should be is refused at once, with
// ErrCorrupt: a FIFO (reading it would block), a device (it would read
// forever), a symlink (records would be written into its target, even a
// journal-shaped one), a directory, a file larger than MaxSize. Nothing is
// written anywhere.
func TestPlantedJournals(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	j, err := Create(real, Record{Op: "begin"})
	require.NoError(t, err)
	require.NoError(t, j.Close())
	before, err := os.ReadFile(real)
	require.NoError(t, err)

	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	zero := filepath.Join(dir, "zero")
	require.NoError(t, os.Symlink("/dev/zero", zero))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(real, link))
	sub := filepath.Join(dir, "dir")
	require.NoError(t, os.Mkdir(sub, 0o700))
	huge := filepath.Join(dir, "huge")
	require.NoError(t, os.WriteFile(huge, []byte(`{"seq":1,"op":"begin"}`+"\n"), 0o600))
	f, err := os.OpenFile(huge, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("x"), MaxSize+1) // not NULs only: a reader must look at them all
	require.NoError(t, err)
	require.NoError(t, f.Close())

	for _, p := range []string{fifo, zero, link, sub, huge} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, err := Read(p)
			assert.ErrorIs(t, err, ErrCorrupt, "Read %s", p)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = OpenKnown(ctx, p, Snapshot{})
			assert.ErrorIs(t, err, ErrCorrupt, "Open %s", p)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: a read that never ends", p) // the FIFO: a failure, not a hung test
		}
	}
	after, err := os.ReadFile(real)
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing written through the symlink")
}
