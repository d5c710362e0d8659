package atomicfile_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/internal/testutil"
)

const page = 4096

// writeResult is what write(2) returned.
type writeResult struct {
	n   int
	err error
}

// fullTmpfs mounts a tmpfs of 8 pages on a directory of the test's, under
// the leak checker, and fills it so that only room bytes are free. It
// returns the tmpfs and the fill file.
func fullTmpfs(t *testing.T, room int64) (dir, fill string) {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	dir = filepath.Join(root, "fs")
	require.NoError(t, os.Mkdir(dir, 0o755))
	testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}})
	testutil.MountTmpfs(t, dir, 8*page)
	return dir, testutil.FillTo(t, dir, room)
}

// TestCreateNewENOSPC fills a real tmpfs: CreateNew either writes the whole
// file or fails with ENOSPC, leaving no file and no space taken.
func TestCreateNewENOSPC(t *testing.T) {
	for _, room := range []int64{0, page, 2 * page} {
		for _, size := range []int{1, page - 1, page, page + 1, 2 * page, 2*page + 1, 5 * page} {
			for _, sync := range []bool{false, true} {
				t.Run(fmt.Sprintf("free=%d/size=%d/sync=%v", room, size, sync), func(t *testing.T) {
					dir, _ := fullTmpfs(t, room)
					data := bytes.Repeat([]byte("x"), size)
					p := filepath.Join(dir, "f")
					err := atomicfile.CreateNew(p, data, atomicfile.Options{Sync: sync})
					if fits := int64((size+page-1)/page*page) <= room; fits {
						require.NoError(t, err)
						got, err := os.ReadFile(p)
						require.NoError(t, err)
						assert.Equal(t, data, got)
						return
					}
					require.ErrorIs(t, err, unix.ENOSPC)
					var pe *os.PathError
					require.ErrorAs(t, err, &pe)
					assert.Equal(t, "write", pe.Op)
					assert.Equal(t, p, pe.Path)
					assert.NoFileExists(t, p)
					assert.Equal(t, room, testutil.FreeBytes(t, dir), "the partial file's pages are given back")
				})
			}
		}
	}
}

// TestCreateNewRealShortWrite provokes a real short write: data larger
// than the room left, so write(2) writes what fits and returns its count
// without an error. When room is then made (the fill removed before the
// next call), CreateNew finishes the file; when it is not, the next write
// fails with ENOSPC (and -1).
func TestCreateNewRealShortWrite(t *testing.T) {
	for _, roomMade := range []bool{false, true} {
		t.Run(fmt.Sprintf("room made=%v", roomMade), func(t *testing.T) {
			dir, fill := fullTmpfs(t, 2*page)
			var got []writeResult
			t.Cleanup(atomicfile.SetWrite(func(fd int, p []byte) (int, error) {
				n, err := unix.Write(fd, p)
				got = append(got, writeResult{n, err})
				if len(got) == 1 && roomMade {
					require.NoError(t, os.Remove(fill))
				}
				return n, err
			}))
			data := bytes.Repeat([]byte("0123456789abcdef"), 5*page/16)
			p := filepath.Join(dir, "f")
			err := atomicfile.CreateNew(p, data, atomicfile.Options{})
			require.NotEmpty(t, got)
			assert.Equal(t, writeResult{2 * page, nil}, got[0], "the first write is short: what fits")
			if roomMade {
				require.NoError(t, err)
				assert.Equal(t, []writeResult{{2 * page, nil}, {3 * page, nil}}, got)
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				assert.Equal(t, data, b)
				return
			}
			require.ErrorIs(t, err, unix.ENOSPC)
			assert.Equal(t, []writeResult{{2 * page, nil}, {-1, unix.ENOSPC}}, got)
			assert.NoFileExists(t, p)
		})
	}
}

// TestWriteFileENOSPC: on a full file system WriteFile fails with ENOSPC
// and leaves the old file as it was, and no temporary file.
func TestWriteFileENOSPC(t *testing.T) {
	for _, room := range []int64{0, page} {
		t.Run(fmt.Sprintf("free=%d", room), func(t *testing.T) {
			dir, fill := fullTmpfs(t, room+page)
			p := filepath.Join(dir, "resolv.conf")
			require.NoError(t, atomicfile.WriteFile(p, []byte("old\n"), atomicfile.Options{}))
			err := atomicfile.WriteFile(p, bytes.Repeat([]byte("x"), 2*page), atomicfile.Options{Sync: true})
			require.ErrorIs(t, err, unix.ENOSPC)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			assert.Equal(t, "old\n", string(b))
			ents, err := os.ReadDir(dir)
			require.NoError(t, err)
			var names []string
			for _, e := range ents {
				names = append(names, filepath.Join(dir, e.Name()))
			}
			assert.ElementsMatch(t, []string{fill, p}, names)
			assert.Equal(t, room, testutil.FreeBytes(t, dir))
		})
	}
}
