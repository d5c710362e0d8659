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
}

// Save writes s as bundleDir/config.json, atomically (a reader sees the old
// file or the new one, never a part), mode 0644. It marshals once.
func Save(bundleDir string, s *Spec, opts SaveOptions) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("spec: marshal: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(bundleDir, ConfigFile), b, atomicfile.Options{Sync: opts.Sync}); err != nil {
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
