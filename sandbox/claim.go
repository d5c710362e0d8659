package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/podsmith/podsmith/internal/atomicfile"
)

// A run dir and a state dir belong to each other: RunDir/state-dir names
// the state dir, StateDir/run-dir the run dir. Recover sweeps the run
// dir's bundles, names and netns pins whose journal it cannot find in its
// two dirs, so two Builders that share one dir but not the other would
// sweep each other's live sandboxes.
const (
	runDirClaim   = "state-dir" // in the run dir
	stateDirClaim = "run-dir"   // in the state dir
)

// claim checks that the Builder's run dir and state dir belong to each
// other, and with write set makes them so (creating the run dir): every
// operation that changes either dir calls it with write set first; those
// that only read call it without. A state dir's claim on another run dir
// lapses when that run dir no longer claims it (a reboot emptied it, or
// it was removed), so moving the run dir between boots works.
func (b *Builder) claim(write bool) error {
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	if b.claimed {
		return nil
	}
	o := b.opts
	runClaim, stateClaim := filepath.Join(o.RunDir, runDirClaim), filepath.Join(o.StateDir, stateDirClaim)
	for {
		owner, err := readClaim(runClaim)
		if err != nil {
			return err
		}
		if owner != "" && owner != o.StateDir {
			return optionError("RunDir", fmt.Sprintf("%s belongs to the state dir %s, not %s: give each state dir its own run dir",
				o.RunDir, owner, o.StateDir))
		}
		runDir, err := readClaim(stateClaim)
		if err != nil {
			return err
		}
		if runDir != "" && runDir != o.RunDir {
			back, err := readClaim(filepath.Join(runDir, runDirClaim))
			if err != nil {
				return err
			}
			if back == o.StateDir {
				return optionError("StateDir", fmt.Sprintf("%s is in use with the run dir %s, not %s: Builders of one state dir share its run dir",
					o.StateDir, runDir, o.RunDir))
			}
		}
		if owner == o.StateDir && runDir == o.RunDir {
			b.claimed = true
			return nil
		}
		if !write {
			return nil // unclaimed: nothing of anyone's is there yet
		}
		if owner == "" {
			if err := os.MkdirAll(o.RunDir, 0o700); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
			err := writeClaim(runClaim, o.StateDir, false)
			if errors.Is(err, fs.ErrExist) {
				continue // another claimed it meanwhile: look again
			}
			if err != nil {
				return err
			}
		}
		if runDir != o.RunDir {
			if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
			if err := writeClaim(stateClaim, o.RunDir, true); err != nil {
				return err
			}
		}
	}
}

// readClaim returns the directory a claim file names, "" if there is none
// (or only one cut short by a crash: it claims nothing).
func readClaim(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	s, ok := strings.CutSuffix(string(data), "\n")
	if !ok || s == "" {
		return "", nil
	}
	return s, nil
}

// writeClaim writes a claim file naming dir, whole and durably: to a
// temporary file, fsynced, then renamed over path (replace) or linked at
// path (fs.ErrExist if a claim is there; one cut short is replaced).
func writeClaim(path, dir string, replace bool) error {
	parent := filepath.Dir(path)
	sweepClaimTemps(parent)
	tmp, err := os.CreateTemp(parent, ".claim-")
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(dir + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if replace {
			err = os.Rename(tmp.Name(), path)
		} else if err = os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			if cur, rerr := readClaim(path); rerr == nil && cur == "" {
				err = os.Rename(tmp.Name(), path) // a torn claim
			}
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return err
	}
	if err == nil {
		err = atomicfile.SyncDir(parent)
	}
	if err != nil {
		return fmt.Errorf("sandbox: claim %s: %w", parent, err)
	}
	return nil
}

// sweepClaimTemps removes temporary claim files that a crash left in dir
// (a live writer's is seconds old at most).
func sweepClaimTemps(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".claim-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Minute {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
