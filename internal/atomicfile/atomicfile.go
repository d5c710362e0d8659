// Package atomicfile writes files so that a reader sees either the old
// content or the new one, never a partial write: the data goes to a temporary
// file in the same directory, which is then renamed over the target.
//
// With Sync set, the temporary file is fsynced before the rename and the
// directory after it, so the new content survives a power loss. Files that
// live on tmpfs (everything under a run dir) gain nothing from Sync.
//
// CreateNew is the cheap case of a file that has no reader yet (one in a
// bundle being built): it is written in place, and must not exist.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Options tune WriteFile. The zero value writes with mode 0644 and no fsync.
type Options struct {
	// Perm is the mode of the written file; 0 means 0644.
	Perm os.FileMode
	// Sync fsyncs the file before the rename and its directory after it.
	Sync bool
}

// WriteFile atomically replaces path with data. On failure the temporary
// file is removed and path is left as it was.
func WriteFile(path string, data []byte, opts Options) (err error) {
	perm := opts.Perm
	if perm == 0 {
		perm = 0o644
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	// CreateTemp makes the file 0600; set the requested mode explicitly so
	// the umask does not matter either.
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	if opts.Sync {
		if err = f.Sync(); err != nil {
			return fmt.Errorf("atomic write %s: sync: %w", path, err)
		}
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	if opts.Sync {
		if err := SyncDir(dir); err != nil {
			return fmt.Errorf("atomic write %s: %w", path, err)
		}
	}
	return nil
}

// CreateNew creates path, which must not exist (an error matching
// fs.ErrExist if it does), holding data, with opts.Perm whatever the umask
// (and, with opts.Sync, fsynced with its directory). It takes no temporary
// file and four system calls: for a file nobody reads before it is whole.
// On failure (a full file system, say) path is removed, and the error
// unwraps to the errno (syscall.ENOSPC).
func CreateNew(path string, data []byte, opts Options) error {
	perm := opts.Perm
	if perm == 0 {
		perm = 0o644
	}
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(perm))
		return err
	})
	if err != nil {
		return &os.PathError{Op: "create", Path: path, Err: err}
	}
	op := "write"
	err = writeAll(fd, data)
	if err == nil {
		op = "chmod"
		err = ignoringEINTR(func() error { return unix.Fchmod(fd, uint32(perm)) })
	}
	if err == nil && opts.Sync {
		op = "sync"
		err = ignoringEINTR(func() error { return unix.Fsync(fd) })
	}
	// close is not retried on EINTR: Linux has released the descriptor
	// whatever close returns.
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		op, err = "close", cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return &os.PathError{Op: op, Path: path, Err: err}
	}
	if opts.Sync {
		if err := SyncDir(filepath.Dir(path)); err != nil {
			_ = os.Remove(path)
			return err
		}
	}
	return nil
}

// write is write(2); tests replace it to see or disturb the calls.
var write = unix.Write

// writeAll writes all of data to fd, a blocking file. write(2) may write
// less than asked without an error (a file system with less room than
// data: the next call then fails with ENOSPC), and on an error returns -1,
// never a count to slice by. EINTR is retried; EAGAIN is not (fd is not
// non-blocking, so it would be a fault to report, not to spin on).
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := write(fd, data)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 || n > len(data) {
			// No progress and no error (or a count beyond data): never
			// loop forever, nor slice out of range, on it.
			return io.ErrShortWrite
		}
		data = data[n:]
	}
	return nil
}

// ignoringEINTR runs fn until it fails with something other than EINTR (as
// the os package does for its system calls).
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error { return sync("sync dir", dir) }

// SyncFile fsyncs a file's content.
func SyncFile(path string) error { return sync("sync", path) }

func sync(what, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	return nil
}
