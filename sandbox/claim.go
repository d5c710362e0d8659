package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

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
// other, and with write set makes them so (creating the dirs): every
// operation that changes either dir calls it with write set first; those
// that only read call it without. A state dir's claim on another run dir
// lapses when that run dir no longer claims it (a reboot emptied it, or
// it was removed), so moving the run dir between boots works. Once both
// claims are seen to be this Builder's, later calls cost nothing; fresh
// looks again (Recover, which sweeps, does).
func (b *Builder) claim(write, fresh bool) error {
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	if b.claimed && !fresh {
		return nil
	}
	b.claimed = false
	owner, runDir, err := b.readClaims()
	if err != nil || !write || owner != "" && runDir != "" {
		b.claimed = err == nil && owner != "" && runDir != ""
		return err // a foreign claim refused before anything is made
	}
	// Writers hold both directories' flocks, the run dir's first: their
	// look and their write are one step for every Builder of either dir,
	// in any process.
	unlock, err := lockDirs(b.opts.RunDir, b.opts.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	if owner, runDir, err = b.readClaims(); err != nil {
		return err
	}
	if owner == "" {
		if err := writeClaim(filepath.Join(b.opts.RunDir, runDirClaim), b.opts.StateDir); err != nil {
			return err
		}
	}
	if runDir == "" {
		if err := writeClaim(filepath.Join(b.opts.StateDir, stateDirClaim), b.opts.RunDir); err != nil {
			return err
		}
	}
	b.claimed = true
	return nil
}

// readClaims returns the run dir's claim and the state dir's, "" for
// one not made (or lapsed), or an error for one of another Builder's.
func (b *Builder) readClaims() (owner, runDir string, err error) {
	o := b.opts
	owner, err = readClaim(filepath.Join(o.RunDir, runDirClaim))
	if err != nil {
		return "", "", err
	}
	if owner != "" && !sameDir(owner, o.StateDir) {
		return "", "", optionError("RunDir", fmt.Sprintf("%s belongs to the state dir %s, not %s: give each state dir its own run dir",
			o.RunDir, owner, o.StateDir))
	}
	runDir, err = readClaim(filepath.Join(o.StateDir, stateDirClaim))
	if err != nil {
		return "", "", err
	}
	if runDir != "" && !sameDir(runDir, o.RunDir) {
		back, err := readClaim(filepath.Join(runDir, runDirClaim))
		if err != nil {
			return "", "", err
		}
		if back != "" && sameDir(back, o.StateDir) {
			return "", "", optionError("StateDir", fmt.Sprintf("%s is in use with the run dir %s, not %s: Builders of one state dir share its run dir",
				o.StateDir, runDir, o.RunDir))
		}
		runDir = "" // lapsed
	}
	return owner, runDir, nil
}

// lockDirs creates the directories and takes an exclusive flock on each,
// in order, and returns their release.
func lockDirs(dirs ...string) (func(), error) {
	var held []*os.File
	unlock := func() {
		for _, f := range held {
			f.Close()
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			unlock()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		f, err := os.Open(d)
		if err == nil {
			held = append(held, f)
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		}
		if err != nil {
			unlock()
			return nil, fmt.Errorf("sandbox: lock %s: %w", d, err)
		}
	}
	return unlock, nil
}

// sameDir reports whether two paths name one directory: the same string,
// or (through symlinks, as /var/run and /run) the same inode.
func sameDir(a, b string) bool {
	if a == b {
		return true
	}
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
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

// writeClaim writes a claim file naming dir, whole and durably (see
// atomicfile). The caller holds the directory's lock.
func writeClaim(path, dir string) error {
	sweepClaimTemps(path)
	if err := atomicfile.WriteFile(path, []byte(dir+"\n"), atomicfile.Options{Sync: true}); err != nil {
		return fmt.Errorf("sandbox: claim: %w", err)
	}
	return nil
}

// sweepClaimTemps removes temporary files of a claim at path that a crash
// left (atomicfile's names; a live writer's is seconds old at most).
func sweepClaimTemps(path string) {
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*"))
	for _, tmp := range tmps {
		if st, err := os.Lstat(tmp); err == nil && time.Since(st.ModTime()) > time.Minute {
			_ = os.Remove(tmp)
		}
	}
}
