package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/journal"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/spec"
)

// State is where a sandbox is in its life, as its journal tells.
type State string

const (
	// StatePlanned: a Plan, nothing made.
	StatePlanned State = "planned"
	// StateBuilding: a Build is running (its journal is locked).
	StateBuilding State = "building"
	// StateBuilt: built in this boot and not stopped. With a Runtime its
	// pause was started; PauseState says whether it still runs.
	StateBuilt State = "built"
	// StateStopped: built, then stopped (Stop: no pause, no network), or
	// built in an earlier boot of the node (which took its pause, mounts
	// and namespaces): not ready. Destroy removes what is left.
	StateStopped State = "stopped"
	// StateNeedsCleanup: a Build or Destroy did not finish (it failed to
	// undo something, or its process died); Destroy (or Recover) finishes
	// it.
	StateNeedsCleanup State = "needs-cleanup"
)

// Sandbox is a sandbox on the node (or, from Plan, one to be built).
type Sandbox struct {
	ID   string `json:"id"`
	Name string `json:"name"` // k8s_<name>_<namespace>_<uid>_<attempt>
	// Config is the pod's request.
	Config   *pod.Config `json:"config"`
	Hostname string      `json:"hostname"`
	// BundleDir is the OCI bundle: config.json, rootfs, and the files.
	BundleDir string `json:"bundle_dir"`
	// NetnsPath is the pinned network namespace ("" with host network).
	NetnsPath string `json:"netns_path,omitempty"`
	// NoPause: the pod has no pause process (Options.PauseMode). Its IPC
	// and UTS namespaces are pinned at IPCNSPath and UTSNSPath ("" for
	// one the pod shares with the node), and its bundle dir holds the
	// files only: no config.json, no rootfs.
	NoPause   bool   `json:"no_pause,omitempty"`
	IPCNSPath string `json:"ipcns_path,omitempty"`
	UTSNSPath string `json:"utsns_path,omitempty"`
	// UserNSPath is the pinned user namespace of a pod that asked for one
	// (userns_options mode POD, with the mappings in Config); it owns the
	// pod's netns, and the pause joins it.
	UserNSPath string `json:"userns_path,omitempty"`
	Files      Files  `json:"files"`
	// ShmSize is the size of the pod's /dev/shm tmpfs (0 with host IPC).
	ShmSize      int64  `json:"shm_size,omitempty"`
	CgroupParent string `json:"cgroup_parent"`
	// CgroupsPath is the spec's linux.cgroupsPath; CgroupDir the cgroup
	// directory it resolves to under each hierarchy's root.
	CgroupsPath string `json:"cgroups_path"`
	CgroupDir   string `json:"cgroup_dir"`
	// ProcessLabel and MountLabel are the pod's SELinux labels (empty
	// without SELinux); its containers get them too (ContainerOpts).
	ProcessLabel string    `json:"process_label,omitempty"`
	MountLabel   string    `json:"mount_label,omitempty"`
	Created      time.Time `json:"created"`

	// What the Build learned, and where the sandbox is now.

	// IPs are the pod's addresses from the network, the primary first.
	IPs []netip.Addr `json:"-"`
	// Timings are the durations of the Build's steps.
	Timings []StepTiming `json:"-"`
	State   State        `json:"-"`
	// Spec is the pause's spec (nil unless planned or built, and nil for
	// a built sandbox whose config.json does not load any more).
	Spec *spec.Spec `json:"-"`
	// PausePid is the pause's PID, with a Runtime, until it is stopped.
	PausePid int `json:"-"`
	// Err says why List could not read the sandbox's journal: only its ID
	// is known, and it is in StateNeedsCleanup.
	Err error `json:"-"`

	b       *Builder
	journal journal.Snapshot // what Build wrote, so Destroy need not read it back
	boot    string           // the boot ID of the node when it was built
}

// Files are the host paths of a sandbox's files.
type Files struct {
	ResolvConf string `json:"resolv_conf"`
	Hostname   string `json:"hostname"`
	Hosts      string `json:"hosts"`
	// Shm is what is bound at /dev/shm: the sandbox's tmpfs, or the node's
	// /dev/shm for a host-IPC pod.
	Shm string `json:"shm"`
	// Rootfs is the bundle's rootfs: a read-only bind of the shared pause
	// rootfs ("" for a pod without a pause).
	Rootfs string `json:"rootfs,omitempty"`
}

// StepTiming is how long a step of the Build took.
type StepTiming struct {
	Step     Step          `json:"step"`
	Duration time.Duration `json:"duration"`
}

// idBytes is the size of a sandbox ID's random bytes (64 hex digits).
const idBytes = 32

// isID reports whether s looks like a sandbox ID (64 lowercase hex).
func isID(s string) bool {
	return len(s) == 2*idBytes && strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }) < 0
}

// Find returns the sandbox with the given ID or name
// (k8s_<name>_<namespace>_<uid>_<attempt>): built, being built, stopped or
// needing cleanup. ErrNotFound if there is none. It only reads.
func (b *Builder) Find(ref string) (*Sandbox, error) {
	if isID(ref) {
		return b.load(ref)
	}
	if owner := b.nameOwner(b.nameLink(ref)); owner != "" {
		if sb, err := b.load(owner); !errors.Is(err, ErrNotFound) {
			return sb, err
		}
	}
	// A sandbox whose undo released its name but did not finish (it needs
	// cleanup) still has it in its journal.
	list, err := b.List()
	if err != nil {
		return nil, err
	}
	for _, sb := range list {
		if sb.Name == ref {
			return sb, nil
		}
	}
	return nil, fmt.Errorf("%w: no sandbox %q", ErrNotFound, truncate(ref))
}

// load reads the sandbox with the given ID from its journal.
func (b *Builder) load(id string) (*Sandbox, error) {
	path := b.journalPath(id)
	// Whether a Build holds it, asked before reading: a Build that is done
	// by the time of the read has written "built".
	locked := journal.Locked(path)
	recs, err := journal.Read(path)
	if journal.IsNotExist(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", shortID(id), err)
	}
	return b.fromRecords(id, recs, locked)
}

// ids returns the IDs of every sandbox with a journal, sorted.
func (b *Builder) ids() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(b.opts.StateDir, "journals"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // not prepared yet: no sandboxes
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if isID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
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
		sb, err := b.load(id)
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

// Destroy tears the sandbox down: it replays the journal backwards (the
// same undo as a failed Build's rollback), on a context detached from ctx
// with Options.UndoTimeout. With a Runtime, the pause container goes first
// (killed if it runs). Every undo runs even when one fails; the errors are
// joined (each an *UndoError), and what could not be undone stays in the
// journal (the sandbox is then in StateNeedsCleanup) for the next Destroy.
// Destroying a sandbox that is gone is success.
//
// A Destroy waits for a Build, Stop or Destroy of the same sandbox in
// progress (in this process or another) until ctx is done; ctx ends only
// that wait, which has changed nothing. The undo, once begun, gets the
// whole UndoTimeout.
func (s *Sandbox) Destroy(ctx context.Context) error {
	return s.locked(ctx, "destroy", s.b.destroyLocked)
}

// Stop does what CRI's StopPodSandbox does (as containerd and CRI-O do
// it): it removes the pause container (with a Runtime: kill, wait,
// delete), detaches the sandbox from its network, releasing its
// addresses, and removes its network namespace (and the IPC and UTS pins
// of a pod without a pause); the rest stays until
// Destroy. The sandbox is then in StateStopped. It is idempotent. Like
// Destroy, it waits for a Build in progress until ctx is done, then runs
// on a context of its own.
func (s *Sandbox) Stop(ctx context.Context) error {
	return s.locked(ctx, "stop", func(uctx context.Context, j *journal.Journal) error {
		stops := func(op string) bool {
			return op == opDetach || op == opRemovePause || op == opNetnsRemove || op == opUnpin
		}
		if err := s.b.undoAll(uctx, j, stops, opStopped); err != nil {
			return err
		}
		s.IPs, s.PausePid, s.journal = nil, 0, j.Snapshot()
		if s.State == StateBuilt {
			s.State = StateStopped
		}
		return nil
	})
}

// locked runs fn (the operation op) with the sandbox's journal locked
// (waiting for it until ctx is done) and a context of its own, detached
// from ctx. A sandbox that is gone is success, fn not run.
func (s *Sandbox) locked(ctx context.Context, op string, fn func(context.Context, *journal.Journal) error) error {
	if !isID(s.ID) {
		return fmt.Errorf("%w: %q is not a sandbox ID", ErrNotFound, truncate(s.ID))
	}
	// Wait for a Build, Stop or Destroy that holds the journal.
	j, err := journal.OpenKnown(ctx, s.b.journalPath(s.ID), s.journal)
	if journal.IsNotExist(err) {
		return nil // never built, or destroyed
	}
	if err == nil {
		defer j.Close()
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.b.opts.UndoTimeout)
		defer cancel()
		err = fn(uctx, j)
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: %s: %w", shortID(s.ID), op, err)
	}
	return nil
}

// PauseState returns the runtime's state of the sandbox's pause
// container; an error matching ErrNotFound if there is none (a Builder
// without a Runtime, a stopped sandbox).
func (s *Sandbox) PauseState(ctx context.Context) (specs.State, error) {
	rt := s.b.runtime(s.Config.RuntimeHandler)
	if rt == nil {
		return specs.State{}, fmt.Errorf("%w: the Builder has no runtime for handler %q", ErrNotFound, s.Config.RuntimeHandler)
	}
	st, err := rt.State(ctx, s.ID)
	if errors.Is(err, fs.ErrNotExist) {
		return specs.State{}, fmt.Errorf("%w: sandbox %s has no pause container", ErrNotFound, shortID(s.ID))
	}
	return st, err
}
