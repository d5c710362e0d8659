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

	"github.com/podsmith/podsmith/internal/boot"
	"github.com/podsmith/podsmith/internal/journal"
	"github.com/podsmith/podsmith/mounts"
)

// RecoverReport says what Recover cleaned up.
type RecoverReport struct {
	// Destroyed are the sandboxes undone: unfinished Builds and Destroys,
	// and sandboxes of an earlier boot.
	Destroyed []string
	// Orphans are name links, netns pins and bundle dirs that belonged to
	// no sandbox, and were removed.
	Orphans []string
	// Busy are the sandboxes whose journal another held throughout: a
	// Build or Destroy in progress, left alone.
	Busy []string
}

// Recover finishes what crashed Builds and Destroys left behind, as after a
// crash or a reboot: it destroys every sandbox that is neither built nor
// being built, every sandbox whose Destroy did not finish, and every
// sandbox of an earlier boot of the node (the reboot took its pause,
// mounts and namespaces; what is left, as an address the network
// allocated on disk, goes now); then it removes name links, netns pins and
// bundle dirs that belong to no sandbox. Sandboxes built in this boot,
// stopped or not, are left alone. Call it when the node's runtime starts.
// It goes on after an error and returns them all, joined.
func (b *Builder) Recover(ctx context.Context) (*RecoverReport, error) {
	rep := &RecoverReport{}
	ids, err := b.ids()
	if err != nil {
		return rep, fmt.Errorf("sandbox: recover: %w", err)
	}
	var errs []error
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
	return rep, errors.Join(append(errs, err)...)
}

// busyWait is how long Recover waits for a Build or Destroy in progress
// before it leaves the sandbox alone (a look at the lock is waited out in
// any case).
const busyWait = 20 * time.Millisecond

// recoverOne decides about one sandbox under its journal's lock, hardly
// waiting for it: a journal another holds is a Build or Destroy in
// progress, and is left alone (ErrLocked).
func (b *Builder) recoverOne(ctx context.Context, id string) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, busyWait)
	j, err := journal.OpenKnown(wctx, b.journalPath(id), journal.Snapshot{})
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
	if len(j.Records()) == 0 {
		// Its first record never reached the disk (a power loss): what it
		// would undo did not outlive the boot; the sweep takes the rest.
		return true, j.Remove()
	}
	sb, err := b.fromRecords(id, j.Records(), false)
	if err != nil {
		return false, err
	}
	if (sb.State == StateBuilt || sb.State == StateStopped) && sb.boot == boot.ID() {
		// A process restarted: hold the SELinux MCS pairs of the
		// sandboxes that live on, so no new one gets the same.
		// (The journaled label: a pod without a pause has no spec.)
		if l := sb.ProcessLabel; l != "" {
			if err := selinux.ReserveLabelV2(l); err != nil && !errors.Is(err, selinux.ErrMCSAlreadyExists) {
				return false, err
			}
			b.labels.hold(l)
		}
		return false, nil
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.UndoTimeout)
	defer cancel()
	if err := b.destroyLocked(uctx, j); err != nil {
		return false, err
	}
	return true, nil
}

// sweepOrphans removes what belongs to no sandbox of this Builder (a Build
// makes its journal first and a Destroy removes it last): name links,
// netns pins with this Builder's tag, journal temp files whose maker died,
// and bundle dirs of an earlier boot (a run dir may be shared with other
// state dirs' Builders, whose live bundles have no journal here).
func (b *Builder) sweepOrphans() ([]string, error) {
	var removed []string
	var errs []error
	sweep := func(dir string, orphan func(name, path string) bool, remove func(string) error) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if !orphan(e.Name(), p) {
				continue
			}
			if err := remove(p); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, p)
		}
	}
	noJournal := func(id string) bool {
		_, err := os.Lstat(b.journalPath(id))
		return isID(id) && errors.Is(err, fs.ErrNotExist)
	}
	sweep(filepath.Join(b.opts.StateDir, "names"), func(_, link string) bool {
		target, err := os.Readlink(link)
		return err == nil && (linkID(target) == "" || noJournal(linkID(target)))
	}, func(link string) error {
		target, _ := os.Readlink(link)
		gone, err := removeLinkTo(link, target)
		if err == nil && !gone {
			err = fmt.Errorf("%s changed while it was swept", link)
		}
		return err
	})
	journals := filepath.Join(b.opts.StateDir, "journals")
	sweep(journals, func(name, _ string) bool { return journal.StaleTemp(journals, name) }, os.Remove)
	sweep(b.opts.NetnsDir, func(name, _ string) bool {
		id, ok := strings.CutPrefix(name, b.netnsName(""))
		return ok && noJournal(id)
	}, b.opts.Host.RemoveNetNS)
	boot := boot.Time()
	sweep(filepath.Join(b.opts.RunDir, "sandboxes"), func(id, dir string) bool {
		st, err := os.Lstat(dir)
		return err == nil && noJournal(id) && st.ModTime().Before(boot)
	}, func(dir string) error {
		return errors.Join(b.opts.Host.Unmount(filepath.Join(dir, "rootfs")), b.opts.Host.Unmount(filepath.Join(dir, "shm")), mounts.RemoveTree(dir))
	})
	return removed, errors.Join(errs...)
}
