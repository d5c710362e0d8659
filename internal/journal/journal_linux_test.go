package journal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
)

// A full file system: the room a journal reserved takes a teardown's
// records; past it, a failed write is cut off, so the journal stays
// readable and takes records again once there is room.
func TestAppendOnAFullFileSystem(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}})
	dir := filepath.Join(root, "fs")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"))
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })

	p := filepath.Join(dir, "journal")
	j, err := Create(p, Record{Op: "begin"})
	require.NoError(t, err)
	// Fill every page that is left.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			require.ErrorIs(t, err, unix.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())
	// A teardown's records fit in the reserve.
	for range 40 {
		_, err := j.Append(Record{Op: "undone", Ref: 1, Path: strings.Repeat("p", 100)}, false)
		require.NoError(t, err, "within the reserve")
	}
	big := strings.Repeat("x", 3000)
	var failed error
	for range 10 {
		if _, failed = j.Append(Record{Op: "undo", Path: big}, false); failed != nil {
			break
		}
	}
	require.ErrorIs(t, failed, unix.ENOSPC)
	recs, err := Read(p)
	require.NoError(t, err, "still readable")
	n := len(recs)

	require.NoError(t, os.Remove(filler))
	r, err := j.Append(Record{Op: "undone", Ref: 1}, false)
	require.NoError(t, err)
	assert.Equal(t, n+1, r.Seq)
	recs, err = Read(p)
	require.NoError(t, err)
	assert.Len(t, recs, n+1)
	require.NoError(t, j.Close())
	require.NoError(t, unix.Unmount(dir, 0))
	require.NoError(t, os.Remove(dir))
}

// A journal that cannot have its reserve is not created.
func TestCreateNeedsItsReserve(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}})
	dir := filepath.Join(root, "fs")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4k"))
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	_, err := Create(filepath.Join(dir, "journal"), Record{Op: "begin"})
	require.ErrorIs(t, err, unix.ENOSPC)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents)
	require.NoError(t, unix.Unmount(dir, 0))
	require.NoError(t, os.Remove(dir))
}

// A new journal has no name until it is locked and written: nothing in the
// directory is ever a journal another process could find unlocked (the
// sweep of crashed temporary files relies on that).
func TestNewJournalHasNoNameUntilLocked(t *testing.T) {
	dir := t.TempDir()
	f, tmp, err := writeLocked(dir, []byte("{}\n"), false)
	require.NoError(t, err)
	defer f.Close()
	assert.Empty(t, tmp, "the file system of t.TempDir() supports O_TMPFILE")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents)
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(int(f.Fd()), &st))
	assert.Zero(t, st.Nlink)

	p := filepath.Join(dir, "j")
	require.NoError(t, name(f, tmp, p))
	assert.True(t, Locked(p), "named already locked")
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "{}\n"+strings.Repeat("\x00", Reserve), string(data), "the records, then the reserve")
	// A name that exists is not replaced.
	f2, tmp2, err := writeLocked(dir, []byte("{}\n"), false)
	require.NoError(t, err)
	defer f2.Close()
	require.ErrorIs(t, name(f2, tmp2, p), os.ErrExist)
	ents, err = os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 1)
}
