package spec

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/internal/regfile"
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
		err = atomicfile.CreateNew(path, b, atomicfile.Options{Sync: opts.Sync})
	} else {
		err = atomicfile.WriteFile(path, b, atomicfile.Options{Sync: opts.Sync})
	}
	if err != nil {
		return fmt.Errorf("spec: save: %w", err)
	}
	return nil
}

// MaxSpecSize is the most Load reads: far more than a pause's spec (its
// largest part, a seccomp profile, is some 30 KB).
const MaxSpecSize = 16 << 20

// Load reads bundleDir/config.json. Anything there but a regular file of
// at most MaxSpecSize bytes (a symlink, a FIFO, a device) is an error, so
// that what is planted in a bundle neither blocks nor fills the memory.
func Load(bundleDir string) (*Spec, error) {
	path := filepath.Join(bundleDir, ConfigFile)
	f, err := regfile.Open(path, os.O_RDONLY, false)
	if err != nil {
		return nil, fmt.Errorf("spec: load %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("spec: load %s: %w", path, err)
	}
	if len(b) > MaxSpecSize {
		return nil, fmt.Errorf("spec: load %s: larger than %d bytes", path, MaxSpecSize)
	}
	s := new(Spec)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("spec: load %s: %w", path, err)
	}
	return s, nil
}
