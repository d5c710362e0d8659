package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/atomicfile"
)

// ConfigFile is the name of the spec in a bundle.
const ConfigFile = "config.json"

// SaveOptions tune Save.
type SaveOptions struct {
	// Sync fsyncs config.json and the bundle dir, so the bundle survives a
	// power loss. Bundles under a tmpfs run dir do not need it.
	Sync bool
	// New says the bundle has no config.json and no reader yet (a bundle
	// being built): the file is written in place, not through a temporary
	// file and a rename, and an existing one is an error (fs.ErrExist).
	New bool
}

// Save writes s as bundleDir/config.json, mode 0644, atomically (a reader
// sees the old file or the new one, never a part) unless opts.New. It
// marshals once.
func Save(bundleDir string, s *Spec, opts SaveOptions) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("spec: marshal: %w", err)
	}
	path := filepath.Join(bundleDir, ConfigFile)
	if opts.New {
		err = writeNew(path, b, opts.Sync)
	} else {
		err = atomicfile.WriteFile(path, b, atomicfile.Options{Sync: opts.Sync})
	}
	if err != nil {
		return fmt.Errorf("spec: save: %w", err)
	}
	return nil
}

// writeNew creates path (which must not exist) holding data, mode 0644
// whatever the umask, in four system calls.
func writeNew(path string, data []byte, sync bool) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	for len(data) > 0 && err == nil {
		var n int
		n, err = unix.Write(fd, data)
		data = data[n:]
	}
	if err == nil {
		err = unix.Fchmod(fd, 0o644)
	}
	if err == nil && sync {
		err = unix.Fsync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	if sync {
		return atomicfile.SyncDir(filepath.Dir(path))
	}
	return nil
}

// Load reads bundleDir/config.json.
func Load(bundleDir string) (*Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundleDir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("spec: load: %w", err)
	}
	s := new(Spec)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("spec: load %s: %w", filepath.Join(bundleDir, ConfigFile), err)
	}
	return s, nil
}
