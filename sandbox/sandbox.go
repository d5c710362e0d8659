package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/cgroupdir"
	"github.com/podsmith/podsmith/internal/journal"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/spec"
)

// State is where a sandbox is in its life, as its journal tells.
type State string

const (
	// StateBuilding: a Build is running (its journal is locked).
	StateBuilding State = "building"
	// StateBuilt: the bundle is ready (config.json written).
	StateBuilt State = "built"
	// StateNeedsCleanup: a Build or Destroy did not finish (it failed to
	// undo something, or its process died); Destroy (or Recover) finishes
	// it.
	StateNeedsCleanup State = "needs-cleanup"
)

// Sandbox is a sandbox on the node.
type Sandbox struct {
	ID   string
	Name string
	// Config is the pod's request.
	Config   *Config
	Hostname string
	// BundleDir is the OCI bundle to give the runtime.
	BundleDir string
	// NetnsPath is the pinned network namespace ("" with host network).
	NetnsPath string
	// IPs are the pod's addresses from the network, the primary first.
	IPs          []netip.Addr
	Files        Files
	ShmSize      int64
	CgroupParent string
	CgroupsPath  string
	CgroupDir    string
	Created      time.Time
	// Timings are the durations of the Build's steps.
	Timings []StepTiming
	State   State
	// Spec is the pause's spec (nil unless built).
	Spec *spec.Spec
	// PausePid is the pause's PID, with a Runtime, while the Build's
	// container is not stopped (0 after Stop).
	PausePid int
	// Err says why List could not read the sandbox's journal: only its ID
	// is known, and it is in StateNeedsCleanup.
	Err error

	b       *Builder
	journal journal.Snapshot // what Build wrote, so Destroy need not read it back
}

// isID reports whether s looks like a sandbox ID (64 lowercase hex).
func isID(s string) bool {
	return len(s) == 64 && strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }) < 0
}

// Load returns the sandbox with the given ID, from its journal: built,
// being built, or needing cleanup. ErrNotFound if there is none.
func (b *Builder) Load(id string) (*Sandbox, error) {
	if !isID(id) {
		return nil, fmt.Errorf("%w: %q is not a sandbox ID", ErrNotFound, truncate(id))
	}
	if err := b.claim(false, false); err != nil {
		return nil, err
	}
	// A journal can move (to the state dir) or go (destroyed) between
	// finding it and reading it: look again.
	for range 3 {
		path := b.findJournal(id)
		if path == "" {
			break
		}
		// Whether a Build holds it, asked before reading: a Build that is
		// done by the time of the read has written "built".
		locked := journal.Locked(path)
		recs, err := journal.Read(path)
		if journal.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		return b.fromRecords(id, recs, locked)
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
}

// fromRecords makes a Sandbox of its journal's records; locked says
// whether another held the journal when they were read.
func (b *Builder) fromRecords(id string, recs []journal.Record, locked bool) (*Sandbox, error) {
	unfinished := StateNeedsCleanup
	if locked {
		unfinished = StateBuilding
	}
	if len(recs) == 0 || recs[0].Op != opBegin {
		return &Sandbox{ID: id, State: unfinished, b: b}, nil
	}
	var sr sandboxRecord
	if err := json.Unmarshal(recs[0].Data, &sr); err != nil {
		return nil, fmt.Errorf("sandbox %s: journal: %w", id, err)
	}
	sb := &Sandbox{
		ID: sr.ID, Name: sr.Name, Config: sr.Config, Hostname: sr.Hostname, BundleDir: sr.BundleDir,
		NetnsPath: sr.NetnsPath, Files: sr.Files, ShmSize: sr.ShmSize, CgroupParent: sr.CgroupParent,
		CgroupsPath: sr.CgroupsPath, CgroupDir: sr.CgroupDir, Created: sr.Created, b: b,
	}
	built, destroying, released, stopped := false, false, false, false
	undone := undoneSet(recs)
	for _, r := range recs {
		switch r.Op {
		case opBuilt:
			var br builtRecord
			if err := json.Unmarshal(r.Data, &br); err != nil {
				return nil, fmt.Errorf("sandbox %s: journal: %w", id, err)
			}
			built, sb.IPs, sb.Timings, sb.PausePid = true, br.IPs, br.Timings, br.Pid
		case opDestroying:
			destroying = true
		case opDetach:
			released = undone[r.Seq]
		case opRemovePause:
			stopped = undone[r.Seq]
		}
	}
	if released {
		sb.IPs = nil
	}
	if stopped {
		sb.PausePid = 0
	}
	switch {
	case built && !destroying:
		sb.State = StateBuilt
		s, err := spec.Load(sb.BundleDir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The run dir is gone (a reboot): the sandbox is still known
			// from its journal, and its Destroy still releases its network.
		case err != nil:
			return nil, fmt.Errorf("sandbox %s: %w", id, err)
		}
		sb.Spec = s
	case destroying:
		sb.State = StateNeedsCleanup
	default:
		sb.State = unfinished
	}
	return sb, nil
}

// findJournal returns the path of a sandbox's journal: in the state dir
// if it moved there, else in the run dir; "" if it has none.
func (b *Builder) findJournal(id string) string {
	return findJournal(b.durableJournal(id), b.volatileJournal(id), exists)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// findJournal looks in the state dir, the run dir and the state dir
// again: a journal moves only from the run dir to the state dir (created
// there before it is removed here), so if it moves between the first two
// looks, the third sees it. Two looks would miss it.
func findJournal(durable, volatile string, exists func(string) bool) string {
	for _, p := range []string{durable, volatile, durable} {
		if exists(p) {
			return p
		}
	}
	return ""
}

// alive reports whether a sandbox with this ID has a journal.
func (b *Builder) alive(id string) bool { return isID(id) && b.findJournal(id) != "" }

// ids returns the IDs of every sandbox with a journal, sorted.
func (b *Builder) ids() ([]string, error) {
	if err := b.claim(false, false); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	// The run dir first: a journal that moves to the state dir between the
	// two scans is found in the second.
	for _, dir := range []string{filepath.Join(b.opts.RunDir, "journals"), filepath.Join(b.opts.StateDir, "journals")} {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // not prepared yet: no sandboxes
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		for _, e := range ents {
			if isID(e.Name()) {
				seen[e.Name()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// List returns every sandbox of the node, in creation order. A journal
// that cannot be read does not hide the others: its sandbox is listed in
// StateNeedsCleanup with Err saying why.
func (b *Builder) List() ([]*Sandbox, error) {
	ids, err := b.ids()
	if err != nil {
		return nil, err
	}
	var out []*Sandbox
	for _, id := range ids {
		sb, err := b.Load(id)
		if errors.Is(err, ErrNotFound) {
			continue // destroyed meanwhile
		}
		if err != nil {
			sb = &Sandbox{ID: id, State: StateNeedsCleanup, Err: err, b: b}
		}
		out = append(out, sb)
	}
	slices.SortFunc(out, func(a, c *Sandbox) int { return a.Created.Compare(c.Created) })
	return out, nil
}

// LookupName returns the sandbox holding a name
// (k8s_<name>_<namespace>_<uid>_<attempt>); ErrNotFound if none.
func (b *Builder) LookupName(name string) (*Sandbox, error) {
	if err := b.claim(false, false); err != nil {
		return nil, err
	}
	for _, link := range []string{b.volatileName(name), b.durableName(name)} {
		owner, err := b.nameOwner(link)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		if owner != "" {
			return b.Load(owner)
		}
	}
	// A sandbox whose undo released its name but did not finish (it needs
	// cleanup) still has it in its journal.
	list, err := b.List()
	if err != nil {
		return nil, err
	}
	for _, sb := range list {
		if sb.Name == name {
			return sb, nil
		}
	}
	return nil, fmt.Errorf("%w: no sandbox named %q", ErrNotFound, truncate(name))
}

// Find returns the sandbox with the given ID, unique ID prefix or name.
func (b *Builder) Find(ref string) (*Sandbox, error) {
	if isID(ref) {
		return b.Load(ref)
	}
	if sb, err := b.LookupName(ref); err == nil || !errors.Is(err, ErrNotFound) {
		return sb, err
	}
	if ref == "" || strings.IndexFunc(ref, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }) >= 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, truncate(ref))
	}
	ids, err := b.ids()
	if err != nil {
		return nil, err
	}
	var match string
	for _, id := range ids {
		if strings.HasPrefix(id, ref) {
			if match != "" {
				return nil, fmt.Errorf("%w: %q matches more than one sandbox", ErrAmbiguous, ref)
			}
			match = id
		}
	}
	if match == "" {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	return b.Load(match)
}

// Destroy tears the sandbox down: it replays the journal backwards (the
// same undo as a failed Build's rollback), on a context detached from ctx
// with Options.UndoTimeout. Every undo runs even when one fails; the errors
// are joined, and what could not be undone stays in the journal (the
// sandbox is then in StateNeedsCleanup) for the next Destroy. Destroying a
// sandbox that is gone is success. With a Runtime, the pause container
// is removed first (killed if it runs); without one, stop the pause before
// Destroy: the runtime's container still uses the bundle.
//
// A Destroy waits for a Build or Destroy of the same sandbox in progress
// (in this process or another) until ctx is done; ctx ends only that
// wait, which has changed nothing. The undo, once begun, gets the whole
// UndoTimeout.
func (s *Sandbox) Destroy(ctx context.Context) error { return s.b.destroy(ctx, s.ID, s.journal) }

// Destroy destroys the sandbox with the given ID (see Sandbox.Destroy). It
// waits for a Build of it in progress to finish.
func (b *Builder) Destroy(ctx context.Context, id string) error {
	return b.destroy(ctx, id, journal.Snapshot{})
}

func (b *Builder) destroy(ctx context.Context, id string, known journal.Snapshot) error {
	if !isID(id) {
		return fmt.Errorf("%w: %q is not a sandbox ID", ErrNotFound, truncate(id))
	}
	if err := b.claim(true, false); err != nil {
		return err
	}
	// Waiting for a Build in progress changes nothing: ctx may end it.
	// The cleanup, once begun, runs on a context of its own.
	j, err := b.openJournal(ctx, id, known)
	if journal.IsNotExist(err) {
		return nil // never built, or already destroyed
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", shortID(id), err)
	}
	defer j.Close()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.UndoTimeout)
	defer cancel()
	if err := b.destroyLocked(uctx, id, j); err != nil {
		return fmt.Errorf("sandbox %s: destroy: %w", shortID(id), err)
	}
	return nil
}

// destroyLocked destroys the sandbox whose journal j is, locked.
//
// The "destroying" record (it tells Recover that a crash cut the Destroy
// short) fits in the room the journal reserved on disk; should it not be
// written all the same, the undo still runs: a full disk is when a node
// most needs its space back.
func (b *Builder) destroyLocked(ctx context.Context, id string, j *journal.Journal) error {
	_, merr := j.Append(journal.Record{Op: opDestroying}, false)
	if err := b.replay(ctx, id, j); err != nil {
		return errors.Join(err, merr)
	}
	return nil
}

// openJournal opens and locks a sandbox's journal, waiting (until ctx is
// done) for a Build or Destroy that holds it, and following it if it moved
// meanwhile.
func (b *Builder) openJournal(ctx context.Context, id string, known journal.Snapshot) (*journal.Journal, error) {
	for {
		path := b.findJournal(id)
		if path == "" {
			return nil, fs.ErrNotExist
		}
		j, err := journal.OpenKnown(ctx, path, known)
		if journal.IsNotExist(err) {
			continue // moved to the state dir, or removed: look again
		}
		if err != nil {
			return nil, err
		}
		// A crash while the journal moved leaves it in both places: the
		// moved copy (the state dir's) is the complete one.
		if cur := b.findJournal(id); cur != path {
			j.Close()
			continue
		}
		return j, nil
	}
}

// replay undoes, newest first, every undo record of j not yet undone.
// When everything is undone it removes the journal (and a copy a crashed
// move left in the run dir); otherwise it marks what was undone, so the
// sandbox shows what is left.
func (b *Builder) replay(ctx context.Context, id string, j *journal.Journal) error {
	if err := b.undoAll(ctx, j, isUndo, true); err != nil {
		return err
	}
	if err := j.Remove(); err != nil {
		return err
	}
	if stale := b.volatileJournal(id); stale != j.Path() {
		if err := os.Remove(stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// undoAll undoes, newest first, the records of j that match and are not
// undone yet; every undo runs even when one fails, and the errors are
// joined. The undone records are then appended in one write, unless all
// went well and final says the caller removes the journal next.
//
// Nothing is marked while the undos run: were the process to die among
// them, its journal says "destroying" (or holds no "built"), and Recover
// or the next Destroy runs every undo again, each of which takes "already
// undone" for success.
func (b *Builder) undoAll(ctx context.Context, j *journal.Journal, match func(op string) bool, final bool) error {
	recs := j.Records()
	undone := undoneSet(recs)
	var errs []error
	var done []journal.Record
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if !isUndo(r.Op) || !match(r.Op) || undone[r.Seq] {
			continue
		}
		if err := b.undo(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("undo %s %s: %w", r.Op, r.Path, err))
			continue
		}
		done = append(done, journal.Record{Op: opUndone, Ref: r.Seq})
	}
	if len(done) > 0 && (len(errs) > 0 || !final) {
		if _, err := j.AppendAll(done, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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

// ErrNotAttached is returned by Sandbox.CheckNetwork for a sandbox with no
// live network attachment (host network, no Network, or released).
var ErrNotAttached = errors.New("sandbox: not attached to a network")

// CheckNetwork verifies the sandbox's live network attachment (CNI CHECK),
// for callers that want to check a running pod.
func (s *Sandbox) CheckNetwork(ctx context.Context) error {
	b := s.b
	path := b.findJournal(s.ID)
	if path == "" {
		return fmt.Errorf("%w: %s", ErrNotFound, s.ID)
	}
	recs, err := journal.Read(path)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", shortID(s.ID), err)
	}
	undone := undoneSet(recs)
	for i := len(recs) - 1; i >= 0; i-- {
		if r := recs[i]; r.Op == opDetach && !undone[r.Seq] {
			var a Attachment
			if err := json.Unmarshal(r.Data, &a); err != nil {
				return fmt.Errorf("sandbox %s: journal: %w", shortID(s.ID), err)
			}
			if b.opts.Network == nil {
				return fmt.Errorf("sandbox %s: the Builder has no Network to check with", shortID(s.ID))
			}
			return b.opts.Network.Check(ctx, &a)
		}
	}
	return fmt.Errorf("%w: sandbox %s", ErrNotAttached, shortID(s.ID))
}

// CollectNetwork asks the Network to collect attachments that belong to no
// sandbox of this Builder (CNI GC: stale cached attachments are deleted,
// and plugins that support it collect their own). It waits for the
// attachments in progress to finish and holds new ones back meanwhile (a
// lock shared by the Builders of the state dir, across processes), so its
// list of valid sandboxes misses none. The Network's state (netns/cni's
// cache dir) must be this Builder's alone. A no-op unless the Network is a
// NetworkCollector.
func (b *Builder) CollectNetwork(ctx context.Context) error {
	nc, ok := b.opts.Network.(NetworkCollector)
	if !ok {
		return nil
	}
	if _, err := b.Prepare(); err != nil {
		return err
	}
	unlock, err := b.lockNetwork(ctx, unix.LOCK_EX)
	if err != nil {
		return fmt.Errorf("sandbox: collect network: %w", err)
	}
	defer unlock()
	ids, err := b.ids()
	if err != nil {
		return err
	}
	return nc.GC(ctx, ids)
}

// Stop does what CRI's StopPodSandbox does: it removes the pause
// container (with a Runtime: kill, wait, delete) and detaches the sandbox
// from its network (CNI DEL), releasing its addresses; the rest stays
// until Destroy. It is idempotent. Like Destroy, it waits for a Build in
// progress until ctx is done, then runs on a context of its own.
func (s *Sandbox) Stop(ctx context.Context) error {
	b := s.b
	if err := b.claim(true, false); err != nil {
		return err
	}
	j, err := b.openJournal(ctx, s.ID, s.journal)
	if journal.IsNotExist(err) {
		return nil // destroyed
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", shortID(s.ID), err)
	}
	defer j.Close()
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.UndoTimeout)
	defer cancel()
	if err := b.undoAll(uctx, j, func(op string) bool { return op == opDetach || op == opRemovePause }, false); err != nil {
		return fmt.Errorf("sandbox %s: stop: %w", shortID(s.ID), err)
	}
	s.IPs, s.PausePid = nil, 0
	s.journal = j.Snapshot()
	return nil
}

// PauseState returns the runtime's state of the sandbox's pause
// container: an error matching ErrNotFound if there is none (a Builder
// without a Runtime, a Build that created none yet, a stopped sandbox).
func (s *Sandbox) PauseState(ctx context.Context) (specs.State, error) {
	rt := s.b.opts.Runtime
	if rt == nil {
		return specs.State{}, fmt.Errorf("%w: the Builder has no Runtime", ErrNotFound)
	}
	st, err := rt.State(ctx, s.ID)
	if errors.Is(err, fs.ErrNotExist) {
		return specs.State{}, fmt.Errorf("%w: sandbox %s has no pause container", ErrNotFound, shortID(s.ID))
	}
	return st, err
}

// undo undoes one record. Each undo treats "never happened" and "already
// undone" as success.
func (b *Builder) undo(ctx context.Context, r journal.Record) error {
	switch r.Op {
	case opReleaseName:
		_, err := removeLinkTo(r.Path, r.Name)
		return err
	case opReleaseLabel:
		b.releaseHeldLabel(r.Name)
		return nil
	case opRemoveDir:
		return removeTree(r.Path)
	case opUnmount:
		return b.opts.Mounter.Unmount(r.Path)
	case opNetnsRemove:
		return b.opts.NetNS.Remove(r.Path)
	case opRemovePause:
		return b.removePause(ctx, r.Name, r.Path)
	case opDetach:
		var a Attachment
		if err := json.Unmarshal(r.Data, &a); err != nil {
			return err
		}
		if b.opts.Network == nil {
			return errors.New("the journal holds a network attachment, but the Builder has no Network to detach it")
		}
		return b.opts.Network.Detach(ctx, &a)
	}
	return fmt.Errorf("unknown journal operation %q", r.Op)
}

// removePause removes the pause container: kill, wait, delete (never a
// runtime's delete --force, which sleeps in runc 1.1). A container that
// is gone is removed; Delete also clears what a create cut short left of
// the runtime's state, and the cgroup it made, which the runtime never
// deletes then, goes here.
func (b *Builder) removePause(ctx context.Context, id, cgroup string) error {
	rt := b.opts.Runtime
	if rt == nil {
		return errors.New("the journal holds a pause container, but the Builder has no Runtime to remove it")
	}
	st, err := rt.State(ctx, id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case st.Status != specs.StateStopped:
		if err := rt.Kill(ctx, id, syscall.SIGKILL); err != nil {
			return err
		}
		if err := rt.Wait(ctx, id); err != nil {
			return err
		}
	}
	if err := rt.Delete(ctx, id); err != nil {
		return err
	}
	if cgroup == "" {
		return nil
	}
	return cgroupdir.Remove(ctx, cgroup)
}

// removeTree removes a directory tree without ever entering a mount point:
// a mount left inside (an unmount that failed) is an error, not a reason
// to delete what is on the mounted file system.
func removeTree(dir string) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		// A symlink (or a file) where the directory should be: remove it,
		// never what it points to.
		return os.Remove(dir)
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			mounted, err := mounts.IsMountPoint(p)
			if err != nil && !errors.Is(err, mounts.ErrNotSupported) {
				return err
			}
			if mounted {
				return fmt.Errorf("%s is still a mount point", p)
			}
			if err := removeTree(p); err != nil {
				return err
			}
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
