package testutil

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// MountTmpfs mounts a tmpfs of size bytes (tmpfs rounds it up to pages) on
// dir, which must exist, and unmounts it in a cleanup. Called after
// CheckLeaks (dir made before the snapshot), the unmount runs before the
// leak check and what the test wrote on the tmpfs goes with it; called
// before, the tmpfs and what is on it at the snapshot belong to the
// snapshot, and the leak check looks at what is left on it before the
// unmount. For tests of a full file system: see FillTo.
func MountTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	RequireRoot(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.FormatInt(size, 10)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount tmpfs %s: %v", dir, err)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
}

// FreeBytes returns the bytes an unprivileged writer could still write on
// dir's file system (statfs f_bavail × f_bsize).
func FreeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return int64(st.Bavail) * st.Bsize
}

// FillName is the file FillTo writes.
const FillName = ".fill"

// FillTo writes the file FillName into dir, leaving exactly free bytes free
// on its file system (a tmpfs allocates whole pages: free must be a
// multiple of the page size), checks that with statfs, and returns the
// file's path. Remove it to give the space back.
func FillTo(t testing.TB, dir string, free int64) string {
	t.Helper()
	p := filepath.Join(dir, FillName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	n := FreeBytes(t, dir) - free
	if n < 0 {
		f.Close()
		os.Remove(p)
		t.Fatalf("fill %s: only %d bytes free, not %d", dir, free+n, free)
	}
	_, err = f.Write(make([]byte, n))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		t.Fatalf("fill %s: %v", dir, err)
	}
	if got := FreeBytes(t, dir); got != free {
		t.Fatalf("fill %s: %d bytes free after the fill, want %d", dir, got, free)
	}
	return p
}
