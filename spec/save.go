package spec

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

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
		err = atomicfile.CreateNew(path, b, atomicfile.Options{Sync: opts.Sync})
	} else {
		err = atomicfile.WriteFile(path, b, atomicfile.Options{Sync: opts.Sync})
	}
	if err != nil {
		return fmt.Errorf("spec: save: %w", err)
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
