package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/podsmith/podsmith/internal/boot"
	"github.com/podsmith/podsmith/internal/journal"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/spec"
)

// What a sandbox's journal means (package journal only stores records).
//
// The first record, begin, describes the sandbox. Each undo record comes
// before the change it undoes. built says the Build finished, stopped that
// Stop did, destroying that a Destroy began; undone marks an undo record
// done (Ref: its Seq).
const (
	opBegin        = "begin"          // Data: sandboxRecord
	opReleaseLabel = "release-label"  // Name: the SELinux process label
	opReleaseName  = "release-name"   // Path: the name link, Name: the ID it holds
	opRemoveDir    = "remove-dir"     // Path
	opUnmount      = "unmount"        // Path
	opNetnsRemove  = "netns-remove"   // Path
	opUnpin        = "unpin"          // Path: an IPC or UTS pin
	opDetach       = "net-detach"     // Name: the sandbox ID, Data: NetworkAttachment
	opRemovePause  = "runtime-delete" // Name: the container ID, Path: its cgroup dir
	opBuilt        = "built"          // Data: builtRecord
	opStopped      = "stopped"
	opDestroying   = "destroying"
	opUndone       = "undone" // Ref: the undone record's Seq
)

func isUndo(op string) bool {
	switch op {
	case opReleaseLabel, opReleaseName, opRemoveDir, opUnmount, opNetnsRemove, opUnpin, opDetach, opRemovePause:
		return true
	}
	return false
}

// sandboxRecord is the journal's first record: the sandbox (the fields
// a Build fixes before it begins) and the node's boot ID.
type sandboxRecord struct {
	*Sandbox
	Boot string `json:"boot"`
}

// builtRecord marks the sandbox built, with what the build learned.
type builtRecord struct {
	IPs     []netip.Addr `json:"ips,omitempty"`
	Pid     int          `json:"pid,omitempty"` // the pause's, with a Runtime
	Timings []StepTiming `json:"timings"`
}

// beginRecords are a new journal's records: the sandbox, and the undo of
// its name reservation (and of its SELinux label's MCS pair).
func beginRecords(p *plan, link string) ([]journal.Record, error) {
	data, err := json.Marshal(sandboxRecord{p.Sandbox, boot.ID()})
	if err != nil {
		return nil, err
	}
	recs := []journal.Record{{Op: opBegin, Data: data}}
	if p.processLabel != "" {
		recs = append(recs, journal.Record{Op: opReleaseLabel, Name: p.processLabel})
	}
	return append(recs, journal.Record{Op: opReleaseName, Path: link, Name: p.ID}), nil
}

// markBuilt records that the sandbox is built, as part of its last step.
// Durable when the journal is: after a power loss, a Recover must not take
// a built sandbox for an unfinished one.
func (bl *build) markBuilt(last Step, t0 time.Time) error {
	bl.mu.Lock()
	timings := append(slices.Clip(bl.timings), StepTiming{Step: last, Duration: time.Since(t0)})
	bl.mu.Unlock()
	data, err := json.Marshal(builtRecord{IPs: bl.p.IPs, Pid: bl.p.PausePid, Timings: timings})
	if err != nil {
		return err
	}
	return bl.record(journal.Record{Op: opBuilt, Data: data}, false)
}

// fromRecords makes a Sandbox of its journal's records; locked says
// whether another held the journal when they were read.
func (b *Builder) fromRecords(id string, recs []journal.Record, locked bool) (*Sandbox, error) {
	corrupt := func(why any) error {
		return fmt.Errorf("sandbox %s: journal: %w: %v", shortID(id), journal.ErrCorrupt, why)
	}
	if len(recs) == 0 || recs[0].Op != opBegin {
		return nil, corrupt("no begin record")
	}
	sb := &Sandbox{b: b}
	rec := sandboxRecord{Sandbox: sb}
	if err := json.Unmarshal(recs[0].Data, &rec); err != nil {
		return nil, corrupt(err)
	}
	sb.boot = rec.Boot
	built, stopped, destroying, released := false, false, false, false
	undone := undoneSet(recs)
	for _, r := range recs {
		switch r.Op {
		case opBuilt:
			var br builtRecord
			if err := json.Unmarshal(r.Data, &br); err != nil {
				return nil, corrupt(err)
			}
			built, sb.IPs, sb.Timings, sb.PausePid = true, br.IPs, br.Timings, br.Pid
		case opStopped:
			stopped = true
		case opDestroying:
			destroying = true
		case opDetach:
			released = undone[r.Seq]
		}
	}
	if released {
		sb.IPs = nil
	}
	switch {
	case destroying:
		sb.State = StateNeedsCleanup // a Destroy running, or cut short
	case !built && locked:
		sb.State = StateBuilding
	case !built:
		sb.State = StateNeedsCleanup
	case stopped || sb.boot != boot.ID():
		sb.State, sb.PausePid = StateStopped, 0
	default:
		sb.State = StateBuilt
		// The spec is there to be read (a status, an inspect); nothing a
		// Stop or a Destroy does needs it. One that does not load (gone,
		// or replaced by what is not a spec) leaves Spec nil, never a
		// sandbox that nobody can remove.
		s, err := spec.Load(sb.BundleDir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			b.log.Warn("sandbox spec does not load", "id", id, "error", err)
		}
		sb.Spec = s
	}
	return sb, nil
}

func undoneSet(recs []journal.Record) map[int]bool {
	undone := make(map[int]bool, len(recs))
	for _, r := range recs {
		if r.Op == opUndone {
			undone[r.Ref] = true
		}
	}
	return undone
}

// destroyLocked destroys the sandbox whose journal j is, locked.
//
// The "destroying" record (it tells Recover that a crash cut the Destroy
// short) fits in the room the journal reserved on disk; should it not be
// written all the same, the undo still runs: a full disk is when a node
// most needs its space back.
func (b *Builder) destroyLocked(ctx context.Context, j *journal.Journal) error {
	_, merr := j.Append(journal.Record{Op: opDestroying}, false)
	if err := b.replay(ctx, j); err != nil {
		return errors.Join(err, merr)
	}
	return nil
}

// replay undoes, newest first, every undo record of j not yet undone; when
// everything is undone it removes the journal, otherwise it marks what was
// undone, so the sandbox shows what is left.
func (b *Builder) replay(ctx context.Context, j *journal.Journal) error {
	if err := b.undoAll(ctx, j, isUndo, ""); err != nil {
		return err
	}
	return j.Remove()
}

// undoAll undoes, newest first, the records of j that match and are not
// undone yet; every undo runs even when one fails, and the failures come
// back joined, each an *UndoError. The undone records are then appended in
// one write (with the record after, if any, as Stop's "stopped"), unless
// all went well and after is "": the caller removes the journal next.
//
// Nothing is marked while the undos run: were the process to die among
// them, its journal says "destroying" (or holds no "built"), and Recover
// or the next Destroy runs every undo again, each of which takes "already
// undone" for success.
func (b *Builder) undoAll(ctx context.Context, j *journal.Journal, match func(op string) bool, after string) error {
	recs := j.Records()
	undone := undoneSet(recs)
	var pending []journal.Record
	for i := len(recs) - 1; i >= 0; i-- {
		if r := recs[i]; isUndo(r.Op) && match(r.Op) && !undone[r.Seq] {
			pending = append(pending, r)
		}
	}
	results := make([]error, len(pending))
	ran := make([]bool, len(pending))
	for i := range pending {
		if ran[i] {
			continue
		}
		if i+1 < len(pending) && pairable(pending[i].Op, pending[i+1].Op) {
			b.undoPair(ctx, pending, i, results, ran)
			continue
		}
		results[i], ran[i] = b.undo(ctx, pending[i]), true
	}
	var errs []error
	var done []journal.Record
	for i, r := range pending {
		if err := results[i]; err != nil {
			path := r.Path
			if path == "" {
				path = r.Name // a sandbox, a container, a label
			}
			errs = append(errs, &UndoError{Op: r.Op, Path: path, Err: err})
			continue
		}
		done = append(done, journal.Record{Op: opUndone, Ref: r.Seq})
	}
	if after != "" && len(errs) == 0 && (len(done) > 0 || !slices.ContainsFunc(recs, func(r journal.Record) bool { return r.Op == after })) {
		done = append(done, journal.Record{Op: after})
	}
	if len(done) > 0 && (len(errs) > 0 || after != "") {
		if _, err := j.AppendAll(done, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pairable says whether two undo records next to each other are a pause
// container and a network attachment, which a Build makes at once.
func pairable(a, b string) bool {
	return a != b && (a == opRemovePause || a == opDetach) && (b == opRemovePause || b == opDetach)
}

// undoPair undoes pending[i] and pending[i+1], a pause container and a
// network attachment (pairable), setting their results and ran flags:
// the pause is killed and reaped; then its netns pin goes, if pending too
// (the kernel then tears the namespace and its interfaces down on its
// own, where CNI's bridge plugin would delete the veth itself, 15 ms of
// synchronous kernel work, before it releases the address); then the
// container's delete and the network's detach run at once. A pause that
// cannot be stopped keeps the usual order.
func (b *Builder) undoPair(ctx context.Context, pending []journal.Record, i int, results []error, ran []bool) {
	p, n := i, i+1
	if pending[p].Op == opDetach {
		p, n = n, p
	}
	rt, err := b.pauseRuntime(pending[p])
	if err == nil {
		err = stopPause(ctx, rt, pending[p].Name)
	}
	ns := slices.IndexFunc(pending, func(r journal.Record) bool { return r.Op == opNetnsRemove })
	if err == nil && ns >= 0 {
		results[ns], ran[ns] = b.undo(ctx, pending[ns]), true
	}
	var wg sync.WaitGroup
	wg.Go(func() { results[n] = b.detach(ctx, pending[n].Data) })
	if err == nil {
		err = b.deletePause(ctx, rt, pending[p])
	}
	wg.Wait()
	results[p], ran[p], ran[n] = err, true, true
}

// undo undoes one record. Each undo treats "never happened" and "already
// undone" (by this process, another, or a reboot) as success.
func (b *Builder) undo(ctx context.Context, r journal.Record) error {
	switch r.Op {
	case opReleaseName:
		return releaseName(r.Path, r.Name)
	case opReleaseLabel:
		b.labels.release(r.Name)
		return nil
	case opRemoveDir:
		return mounts.RemoveTree(r.Path)
	case opUnmount:
		return b.opts.Host.Unmount(r.Path)
	case opNetnsRemove:
		return b.opts.Host.RemoveNetNS(r.Path)
	case opUnpin:
		return b.opts.Host.Unpin(r.Path)
	case opDetach:
		return b.detach(ctx, r.Data)
	case opRemovePause:
		rt, err := b.pauseRuntime(r)
		if err == nil {
			err = stopPause(ctx, rt, r.Name)
		}
		if err != nil {
			return err
		}
		return b.deletePause(ctx, rt, r)
	}
	return fmt.Errorf("unknown journal operation %q", r.Op)
}
