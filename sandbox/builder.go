package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux/label"

	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/internal/journal"
	"github.com/podsmith/podsmith/internal/owndir"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox/internal/testhook"
	"github.com/podsmith/podsmith/spec"
)

// Step is a step of a Build.
type Step string

// The steps of a Build, in order. Every step that changes the host first
// writes the undo of its change to the sandbox's journal.
const (
	// StepValidate checks the config and computes the plan (Plan).
	StepValidate Step = "validate"
	// StepReserve creates the sandbox's journal and reserves its name.
	StepReserve Step = "reserve"
	// StepDirs creates the bundle directory under the run dir.
	StepDirs Step = "dirs"
	// StepFiles writes resolv.conf, hostname and hosts (and labels them).
	StepFiles Step = "files"
	// StepRootfs binds the shared pause rootfs read-only into the bundle.
	StepRootfs Step = "rootfs"
	// StepShm mounts the /dev/shm tmpfs (not for host-IPC pods).
	StepShm Step = "shm"
	// StepNetns creates and pins the network namespace, lo up (not for
	// host-network pods).
	StepNetns Step = "netns"
	// StepNamespaces pins the IPC and UTS namespaces of a pod without a
	// pause (Options.PauseMode), with its hostname and sysctls set in
	// them.
	StepNamespaces Step = "namespaces"
	// StepSpec writes config.json (before the network gives addresses:
	// nothing in it depends on them).
	StepSpec Step = "spec"
	// StepNetwork attaches the network namespace to the node's network
	// (not for host-network pods; without a Network, or with none
	// configured, it does nothing). Without a Runtime, the sandbox is then
	// built.
	StepNetwork Step = "network"
	// StepCreate creates the pause container (with a Runtime only), at the
	// same time as StepNetwork attaches.
	StepCreate Step = "create"
	// StepStart starts the pause container (with a Runtime only); the
	// sandbox is then built.
	StepStart Step = "start"
)

// Steps returns the steps of a Build in order.
func Steps() []Step {
	return []Step{StepValidate, StepReserve, StepDirs, StepFiles, StepRootfs, StepShm, StepNetns, StepNamespaces, StepSpec, StepNetwork, StepCreate, StepStart}
}

// Builder builds and destroys sandboxes on one node. It is safe for
// concurrent use by many goroutines, and several Builders (in several
// processes) may share the same directories: names are reserved on disk
// and each sandbox's journal is locked while it is built or destroyed.
type Builder struct {
	opts      Options
	pauseArgs []string
	oomScore  int
	hostCaps  []string
	sysctls   map[string]string // Options.DefaultSysctls, normalized
	log       *slog.Logger
	tag       string // this Builder's mark on shared resources (netns pins)

	nodeResolv *dns.NodeResolvConf
	labels     heldLabels

	prepMu sync.Mutex
	rootfs *spec.PauseRootfs // set by Prepare
}

// NewBuilder checks opts and returns a Builder; unset options take their
// documented defaults. It writes nothing: the Builder's directories and
// the shared pause rootfs are made by Prepare, which the first Build calls.
// A Builder that only plans (as `podctl plan` does) needs no privilege.
func NewBuilder(opts Options) (*Builder, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(o.StateDir))
	b := &Builder{opts: o, log: o.Logger, nodeResolv: dns.NewNodeResolvConf(o.HostResolvConf), tag: hex.EncodeToString(sum[:4])}
	if b.sysctls, err = spec.NormalizeSysctls(o.DefaultSysctls, false, false); err != nil {
		var probs problems
		probs.sysctls("Options.DefaultSysctls", err)
		return nil, probs.err()
	}
	b.pauseArgs = spec.PauseArgs(o.Pause)
	b.oomScore, err = spec.EffectiveOOMScoreAdj(spec.DefaultOOMScoreAdj, o.OOMPolicy)
	if errors.Is(err, ErrNotSupported) {
		b.oomScore, err = spec.DefaultOOMScoreAdj, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	b.hostCaps, err = hostCapabilities()
	if errors.Is(err, ErrNotSupported) {
		b.hostCaps, err = spec.DefaultCapabilities, nil // not Linux: nothing to run anyway
	}
	if err != nil {
		// On Linux, privileged pods get the bounding set's capabilities:
		// without it they would silently get fewer.
		return nil, fmt.Errorf("sandbox: the capabilities privileged pods get: %w", err)
	}
	return b, nil
}

// hostCapabilities is spec.HostCapabilities (a variable for a test).
var hostCapabilities = spec.HostCapabilities

// Options returns the Builder's options, defaults filled in.
func (b *Builder) Options() Options { return b.opts }

// Paths in the Builder's directories.
func (b *Builder) journalPath(id string) string {
	return filepath.Join(b.opts.StateDir, "journals", id)
}
func (b *Builder) bundleDir(id string) string { return filepath.Join(b.opts.RunDir, "sandboxes", id) }
func (b *Builder) networkDir() string         { return filepath.Join(b.opts.StateDir, "network") }

// nameLink is where a name is reserved: a symlink to the ID of the sandbox
// that holds it, named by the name's hash (names are up to 700 bytes).
func (b *Builder) nameLink(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(b.opts.StateDir, "names", hex.EncodeToString(sum[:20]))
}

// netnsName names a sandbox's netns pin: "podsmith-", a tag of this
// Builder (its state dir's) and the ID. The netns dir may be shared with
// other Builders (/run/netns is the default): a Builder sweeps only pins
// with its own tag.
func (b *Builder) netnsName(id string) string { return "podsmith-" + b.tag + "-" + id }

// Prepare makes the Builder's directories and the shared pause rootfs, and
// returns the rootfs. It is idempotent (once it has succeeded it returns at
// once) and safe for concurrent use; Build calls it. Call it at start-up to
// learn early of a missing pause binary or an unwritable directory.
func (b *Builder) Prepare() (*spec.PauseRootfs, error) {
	b.prepMu.Lock()
	defer b.prepMu.Unlock()
	if b.rootfs != nil {
		return b.rootfs, nil
	}
	o := b.opts
	// The Builder's own directories: a symlink planted at one of them
	// would take every write below it elsewhere.
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(o.StateDir, "journals"), 0o700},
		{filepath.Join(o.StateDir, "names"), 0o700},
		{filepath.Join(o.StateDir, "pause"), 0o755},
		{b.networkDir(), 0o700},
		{filepath.Join(o.RunDir, "sandboxes"), 0o711}, // searched by pods' user namespace roots
		{o.NetnsDir, 0o755},
	} {
		if err := owndir.Make(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil { // made by an earlier version, or under a umask
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	// The network lock's files exist from now on: opening them is then no
	// disk write on a Build's path.
	for _, p := range []string{b.networkGate(), b.networkLock()} {
		if err := atomicfile.CreateNew(p, nil, atomicfile.Options{Perm: 0o600}); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	// Journals fsynced later must not lose their directory to a power
	// loss.
	if err := atomicfile.SyncDir(o.StateDir); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	rootfs, err := o.Host.PreparePauseRootfs(filepath.Join(o.StateDir, "pause"), o.Pause)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	b.rootfs = rootfs
	return rootfs, nil
}

// build is one Build in progress.
type build struct {
	b *Builder
	p *plan
	j *journal.Journal

	mu      sync.Mutex // two steps may run at once
	timings []StepTiming
	durable bool // records from now on are fsynced
}

// step is one step of a Build and what it does.
type step struct {
	step Step
	run  func(context.Context) error
}

// Build builds the sandbox cfg asks for and returns it: with a Runtime its
// pause runs, without one its bundle is ready for a runtime. Either it
// succeeds or the host is left as it was: a failed step is rolled back by
// replaying the journal backwards, on a context detached from ctx (so a
// cancelled ctx still cleans up) with Options.UndoTimeout. Errors: a
// *ConfigError for an invalid config, a *NameReservedError for a name in
// use, else a *StepError naming the step.
func (b *Builder) Build(ctx context.Context, cfg *pod.Config) (*Sandbox, error) {
	start := time.Now()
	if err := b.hook(ctx, "", StepValidate); err != nil {
		return nil, &StepError{Step: StepValidate, Err: err}
	}
	p, err := b.plan(cfg)
	if err != nil {
		return nil, err
	}
	b.labels.hold(p.processLabel)
	bl := &build{b: b, p: p}
	bl.timed(StepValidate, start, nil)
	// Each phase's steps run at once: the network's attach and the
	// runtime's create are independent once the netns is pinned and
	// config.json written.
	var phases [][]step
	add := func(skip bool, steps ...step) {
		if !skip {
			phases = append(phases, steps)
		}
	}
	rt := b.runtime(cfg.RuntimeHandler) != nil && !p.NoPause
	add(false, step{StepReserve, bl.reserve})
	add(false, step{StepDirs, bl.dirs})
	add(false, step{StepFiles, bl.files})
	add(p.NoPause, step{StepRootfs, bl.bindRootfs})
	add(p.hostIPC, step{StepShm, bl.shm})
	add(p.hostNetwork, step{StepNetns, bl.netns})
	add(p.IPCNSPath == "" && p.UTSNSPath == "", step{StepNamespaces, bl.pins})
	add(p.NoPause, step{StepSpec, bl.spec})
	var attach []step
	if !p.hostNetwork {
		attach = append(attach, step{StepNetwork, bl.network})
	}
	if rt {
		attach = append(attach, step{StepCreate, bl.create})
	}
	if len(attach) == 2 && p.ifaceSysctls {
		// The runtime sets a sysctl of eth0 only once CNI made it.
		add(false, attach[0])
		attach = attach[1:]
	}
	add(len(attach) == 0, attach...)
	add(!rt, step{StepStart, bl.start})
	for i, phase := range phases {
		failed, err := bl.together(ctx, phase, i == len(phases)-1)
		if errors.Is(err, testhook.ErrCrash) {
			bl.crash()
			return nil, &StepError{ID: p.ID, Step: failed, Err: err}
		}
		if err != nil {
			return nil, bl.fail(ctx, failed, err)
		}
	}
	sb := p.Sandbox
	sb.State, sb.Timings, sb.journal = StateBuilt, bl.timings, bl.j.Snapshot()
	bl.j.Close()
	return sb, nil
}

// together runs the steps of a phase at once and returns the step that
// failed first, with its error; when one fails the others are cancelled.
// The last phase's step also marks the sandbox built.
func (bl *build) together(ctx context.Context, steps []step, last bool) (Step, error) {
	if len(steps) == 1 {
		return steps[0].step, bl.runStep(ctx, steps[0], last)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(steps))
	var first atomic.Int32
	first.Store(-1)
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Go(func() {
			if errs[i] = bl.runStep(ctx, s, false); errs[i] != nil {
				first.CompareAndSwap(-1, int32(i))
				cancel()
			}
		})
	}
	wg.Wait()
	// A crash stops the Build wherever it comes: it wins over a failure
	// (as a process's death would).
	i := slices.IndexFunc(errs, func(err error) bool { return errors.Is(err, testhook.ErrCrash) })
	if i < 0 {
		i = int(first.Load())
	}
	if i < 0 {
		return "", nil
	}
	return steps[i].step, errs[i]
}

// runStep runs one step, after the hooks, and times it.
func (bl *build) runStep(ctx context.Context, s step, last bool) error {
	t0 := time.Now()
	err := ctx.Err()
	if err == nil {
		err = bl.b.hook(ctx, bl.p.ID, s.step)
	}
	if errors.Is(err, testhook.ErrCrash) {
		return err
	}
	if err == nil {
		err = s.run(ctx)
	}
	if err == nil && last {
		err = bl.markBuilt(s.step, t0)
	}
	bl.timed(s.step, t0, err)
	return err
}

func (b *Builder) hook(ctx context.Context, id string, step Step) error {
	for _, h := range b.opts.hooks {
		if err := h(ctx, id, string(step)); err != nil {
			return err
		}
	}
	return nil
}

func (bl *build) timed(step Step, t0 time.Time, err error) {
	d := time.Since(t0)
	bl.mu.Lock()
	defer bl.mu.Unlock()
	bl.timings = append(bl.timings, StepTiming{Step: step, Duration: d})
	// In step order, also for steps that ran at once.
	slices.SortStableFunc(bl.timings, func(a, b StepTiming) int {
		return slices.Index(Steps(), a.Step) - slices.Index(Steps(), b.Step)
	})
	bl.b.log.Debug("sandbox build step", "id", bl.p.ID, "step", string(step), "duration", d, "error", err)
	if bl.b.opts.OnStep != nil {
		bl.b.opts.OnStep(StepEvent{ID: bl.p.ID, Step: step, Duration: d, Err: err})
	}
}

// fail rolls the build back and returns the error to give the caller.
func (bl *build) fail(ctx context.Context, step Step, err error) error {
	var nr *NameReservedError
	if bl.j == nil { // nothing journaled: nothing was done
		bl.b.labels.release(bl.p.processLabel)
		if errors.As(err, &nr) {
			return err
		}
		return &StepError{ID: bl.p.ID, Step: step, Err: err}
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bl.b.opts.UndoTimeout)
	defer cancel()
	rerr := bl.b.replay(uctx, bl.j)
	bl.j.Close()
	if errors.As(err, &nr) && rerr == nil {
		return err
	}
	return &StepError{ID: bl.p.ID, Step: step, Err: err, RollbackErr: rerr}
}

// crash leaves the build as its process's death would: the journal closed
// (unlocked) as it is, nothing undone (tests only: testhook.ErrCrash).
func (bl *build) crash() {
	if bl.j != nil {
		bl.j.Close()
	}
	bl.b.labels.release(bl.p.processLabel)
}

// record appends an undo record before its step acts. From a durable one
// on (the network's), records are fsynced.
func (bl *build) record(r journal.Record, durable bool) error {
	bl.mu.Lock()
	defer bl.mu.Unlock()
	bl.durable = bl.durable || durable
	_, err := bl.j.Append(r, bl.durable)
	return err
}

func (bl *build) reserve(context.Context) error {
	b, p := bl.b, bl.p
	if _, err := b.Prepare(); err != nil {
		return err
	}
	link := b.nameLink(p.Name)
	// Cheap refusal first: nothing is made for a name that is taken.
	if owner := b.nameOwner(link); owner != "" {
		return &NameReservedError{Name: p.Name, ID: owner}
	}
	first, err := beginRecords(p, link)
	if err != nil {
		return err
	}
	// The journal is born with these records and locked: nobody (a
	// Recover, a Destroy) ever sees it empty or unlocked.
	if bl.j, err = journal.Create(b.journalPath(p.ID), first...); err != nil {
		return err
	}
	return b.reserveName(link, p.Name, p.ID)
}

func (bl *build) dirs(context.Context) error {
	mode := os.FileMode(0o700)
	if bl.p.UserNSPath != "" {
		// The pod's root, an unprivileged user of the node, must reach
		// the bundle (its runtime mounts the files as that user): search,
		// not list.
		if err := searchable(filepath.Dir(bl.p.BundleDir)); err != nil {
			return err
		}
		mode = 0o711
	}
	if err := bl.record(journal.Record{Op: opRemoveDir, Path: bl.p.BundleDir}, false); err != nil {
		return err
	}
	if err := os.Mkdir(bl.p.BundleDir, mode); err != nil {
		return err
	}
	return os.Chmod(bl.p.BundleDir, mode) // past the umask
}

func (bl *build) files(context.Context) error {
	p := bl.p
	for _, f := range []struct {
		path string
		data []byte
	}{{p.Files.ResolvConf, p.resolv}, {p.Files.Hostname, p.hostnameFile}, {p.Files.Hosts, p.hosts}} {
		// A fresh file in the fresh bundle: nobody reads it before
		// config.json exists, so it needs no temp file and rename.
		if err := atomicfile.CreateNew(f.path, f.data, atomicfile.Options{}); err != nil {
			return err
		}
		if p.mountLabel != "" {
			if err := label.Relabel(f.path, p.mountLabel, false); err != nil {
				return fmt.Errorf("relabel %s: %w", f.path, err)
			}
		}
	}
	return nil
}

func (bl *build) bindRootfs(context.Context) error {
	if err := bl.record(journal.Record{Op: opUnmount, Path: bl.p.Files.Rootfs}, false); err != nil {
		return err
	}
	rootfs, err := bl.b.Prepare()
	if err != nil {
		return err
	}
	return bl.b.opts.Host.BindReadOnly(rootfs.Path, bl.p.Files.Rootfs)
}

func (bl *build) shm(context.Context) error {
	if err := bl.record(journal.Record{Op: opUnmount, Path: bl.p.Files.Shm}, false); err != nil {
		return err
	}
	return bl.b.opts.Host.MountShm(bl.p.Files.Shm, bl.p.ShmSize, bl.p.mountLabel, bl.p.owner())
}

func (bl *build) netns(context.Context) error {
	p := bl.p
	opts := NetNSOptions{Sysctls: p.sysctlsOf(specs.NetworkNamespace)}
	if p.UserNSPath != "" {
		// The pod's user namespace, made with the netns it owns.
		if err := bl.record(journal.Record{Op: opUnpin, Path: p.UserNSPath}, false); err != nil {
			return err
		}
		rootfs, err := bl.b.Prepare()
		if err != nil {
			return err
		}
		opts.UserNS = &UserNS{Path: p.UserNSPath, UIDs: p.uids, GIDs: p.gids,
			HelperBinary: filepath.Join(rootfs.Path, spec.PauseBinaryName), HelperArgs: rootfs.Args[1:]}
	}
	if err := bl.record(journal.Record{Op: opNetnsRemove, Path: p.NetnsPath}, false); err != nil {
		return err
	}
	path, err := bl.b.opts.Host.CreateNetNS(bl.b.opts.NetnsDir, bl.b.netnsName(p.ID), opts)
	if err == nil && path != p.NetnsPath {
		err = fmt.Errorf("netns pinned at %s, not %s", path, p.NetnsPath)
	}
	return err
}

// pins pins the IPC and UTS namespaces of a pod without a pause.
func (bl *build) pins(context.Context) error {
	p := bl.p
	for _, pin := range []struct {
		path string
		ns   Namespace
	}{
		{p.IPCNSPath, Namespace{Type: specs.IPCNamespace, Sysctls: p.sysctlsOf(specs.IPCNamespace)}},
		{p.UTSNSPath, Namespace{Type: specs.UTSNamespace, Hostname: p.Hostname}},
	} {
		if pin.path == "" {
			continue
		}
		if err := bl.record(journal.Record{Op: opUnpin, Path: pin.path}, false); err != nil {
			return err
		}
		if err := bl.b.opts.Host.PinNamespace(pin.path, pin.ns); err != nil {
			return err
		}
	}
	return nil
}

func (bl *build) spec(context.Context) error {
	p := bl.p
	// The bundle is this Build's alone until it returns: config.json is
	// written in place (a crash's half file goes with the bundle).
	return spec.Save(p.BundleDir, p.Spec, spec.SaveOptions{New: true})
}
