package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/selinux/go-selinux"

	"github.com/podsmith/podsmith/internal/journal"
)

// RecoverReport says what Recover cleaned up.
type RecoverReport struct {
	// Destroyed are the sandboxes whose unfinished Build or Destroy was
	// undone.
	Destroyed []string
	// Orphans are name links, bundle dirs and netns pins that belonged to
	// no sandbox, and were removed.
	Orphans []string
	// Busy are the sandboxes whose journal another held throughout: a
	// Build or Destroy in progress, left alone.
	Busy []string
}

// Recover finishes what crashed Builds and Destroys left behind, as after a
// crash or a reboot: it destroys every sandbox that is neither built nor
// being built, and every sandbox whose Destroy did not finish; then it
// removes name links, bundle dirs and netns pins that belong to no sandbox.
// Built sandboxes are left alone (after a reboot their pause processes are
// gone; the caller decides, and their Destroy still releases their
// network). Call it when the node's runtime starts. It goes on after an
// error and returns them all, joined.
func (b *Builder) Recover(ctx context.Context) (*RecoverReport, error) {
	rep := &RecoverReport{}
	// Looked at afresh: Recover sweeps, and a claim seen at start-up may
	// have gone since (a run dir emptied under a running process).
	if err := b.claim(true, true); err != nil {
		return rep, err
	}
	var errs []error
	ids, err := b.ids()
	if err != nil {
		return rep, fmt.Errorf("sandbox: recover: %w", err)
	}
	for _, id := range ids {
		destroyed, err := b.recoverOne(ctx, id)
		switch {
		case errors.Is(err, journal.ErrLocked):
			rep.Busy = append(rep.Busy, id)
		case err != nil:
			errs = append(errs, fmt.Errorf("sandbox %s: recover: %w", shortID(id), err))
		case destroyed:
			rep.Destroyed = append(rep.Destroyed, id)
		}
	}
	rep.Orphans, err = b.sweepOrphans()
	if err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// busyWait is how long Recover waits for a Build or Destroy in progress
// before it leaves the sandbox alone (a Load's look at the lock is waited
// out in any case; see journal.OpenKnown).
const busyWait = 20 * time.Millisecond

// recoverOne decides about one sandbox under its journal's lock, hardly
// waiting for it: a journal another holds is a Build or Destroy in
// progress, and is left alone (ErrLocked); a built sandbox is the
// caller's; anything else is undone.
func (b *Builder) recoverOne(ctx context.Context, id string) (bool, error) {
	path := b.findJournal(id)
	if path == "" {
		return false, nil
	}
	wctx, cancel := context.WithTimeout(ctx, busyWait)
	j, err := journal.OpenKnown(wctx, path, journal.Snapshot{})
	cancel()
	switch {
	case journal.IsNotExist(err):
		return false, nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return false, journal.ErrLocked
	case err != nil:
		return false, err
	}
	defer j.Close()
	if cur := b.findJournal(id); cur != path {
		return false, nil // it moved meanwhile: its builder is alive
	}
	sb, err := b.fromRecords(id, j.Records(), false)
	if err != nil {
		return false, err
	}
	if sb.State == StateBuilt {
		// A process restarted: hold the SELinux MCS pairs of the
		// sandboxes that live on, so no new one gets the same.
		if sb.Spec != nil && sb.Spec.Process != nil && sb.Spec.Process.SelinuxLabel != "" {
			l := sb.Spec.Process.SelinuxLabel
			if err := selinux.ReserveLabelV2(l); err != nil && !errors.Is(err, selinux.ErrMCSAlreadyExists) {
				return false, err
			}
			b.holdLabel(l)
		}
		return false, nil
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.UndoTimeout)
	defer cancel()
	if err := b.destroyLocked(uctx, id, j); err != nil {
		return false, err
	}
	return true, nil
}

// sweepOrphans removes what belongs to no sandbox. A Build makes its
// journal before anything else and a Destroy removes it after everything
// else, so a thing whose sandbox has no journal is an orphan, not a build
// in progress.
func (b *Builder) sweepOrphans() ([]string, error) {
	var removed []string
	var errs []error
	for _, names := range []string{filepath.Join(b.opts.RunDir, "names"), filepath.Join(b.opts.StateDir, "names")} {
		ents, err := os.ReadDir(names)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range ents {
			link := filepath.Join(names, e.Name())
			owner, err := os.Readlink(link)
			if err != nil || b.alive(owner) {
				continue
			}
			gone, err := removeLinkTo(link, owner)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if gone {
				removed = append(removed, link)
			}
		}
	}
	// A journal left in the run dir by a crash while it moved to the state
	// dir (the moved one is complete), and temporary files of a journal
	// being created or moved when its process died.
	for _, dir := range []string{filepath.Join(b.opts.RunDir, "journals"), filepath.Join(b.opts.StateDir, "journals")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			switch {
			case journal.StaleTemp(dir, e.Name()):
			case dir == filepath.Join(b.opts.RunDir, "journals") && isID(e.Name()):
				if _, err := os.Lstat(b.durableJournal(e.Name())); err != nil {
					continue
				}
				// Both copies: whoever holds one is its build; the stale one
				// is unlocked.
				if journal.Locked(p) {
					continue
				}
			default:
				continue
			}
			// Gone already: its own builder removed it (the end of a move).
			if err := os.Remove(p); err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
				continue
			}
			removed = append(removed, p)
		}
	}
	bundles := filepath.Join(b.opts.RunDir, "sandboxes")
	if ents, err := os.ReadDir(bundles); err == nil {
		for _, e := range ents {
			dir := filepath.Join(bundles, e.Name())
			// A Destroy removes the bundle before the journal: one seen
			// without a journal that is gone already was its, not a leak.
			if !isID(e.Name()) || b.alive(e.Name()) || !exists(dir) {
				continue
			}
			err := errors.Join(
				b.opts.Mounter.Unmount(filepath.Join(dir, "rootfs")),
				b.opts.Mounter.Unmount(filepath.Join(dir, "shm")),
			)
			if err == nil {
				err = removeTree(dir)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, dir)
		}
	}
	if ents, err := os.ReadDir(b.opts.NetnsDir); err == nil {
		for _, e := range ents {
			id, ok := strings.CutPrefix(e.Name(), b.netnsName(""))
			pin := filepath.Join(b.opts.NetnsDir, e.Name())
			if !ok || !isID(id) || b.alive(id) || !exists(pin) {
				continue // (as for bundles)
			}
			if err := b.opts.NetNS.Remove(pin); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, pin)
		}
	}
	return removed, errors.Join(errs...)
}
