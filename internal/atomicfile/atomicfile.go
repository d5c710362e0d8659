// Package atomicfile writes files so that a reader sees either the old
// content or the new one, never a partial write: the data goes to a temporary
// file in the same directory, which is then renamed over the target.
//
// With Sync set, the temporary file is fsynced before the rename and the
// directory after it, so the new content survives a power loss. Files that
// live on tmpfs (everything under a run dir) gain nothing from Sync.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
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

// SyncDir fsyncs a directory, making renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
