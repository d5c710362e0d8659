package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"time"

	"github.com/opencontainers/selinux/go-selinux/label"

	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/internal/journal"
	"github.com/podsmith/podsmith/internal/owndir"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/spec"
)

// Step is a step of a Build.
type Step string

// The steps of a Build, in order. Every step that changes the host first
// writes the undo of its change to the sandbox's journal.
const (
	// StepValidate checks the config and computes the plan (Plan).
	StepValidate Step = "validate"
	// StepReserve creates the sandbox's journal (in the run dir) and
	// reserves its name.
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
	// StepNetwork attaches the network namespace to the node's network
	// (CNI ADD; not for host-network pods; without a Network, loopback
	// only, it does nothing).
	StepNetwork Step = "network"
	// StepSpec writes config.json. Without a Runtime, the sandbox is then
	// built.
	StepSpec Step = "spec"
	// StepCreate creates the pause container (with a Runtime only).
	StepCreate Step = "create"
	// StepStart starts the pause container (with a Runtime only); the
	// sandbox is then built.
	StepStart Step = "start"
)

// Steps returns the steps of a Build in order.
func Steps() []Step {
	return []Step{StepValidate, StepReserve, StepDirs, StepFiles, StepRootfs, StepShm, StepNetns, StepNetwork, StepSpec, StepCreate, StepStart}
}

// Journal operations. The undo ones name what to undo; the others record
// the sandbox's life.
const (
	opBegin        = "begin"          // Data: sandboxRecord
	opReleaseName  = "release-name"   // Path: the name link, Name: the ID it holds
	opReleaseLabel = "release-label"  // Name: the SELinux process label
	opRemoveDir    = "remove-dir"     // Path
	opUnmount      = "unmount"        // Path
	opNetnsRemove  = "netns-remove"   // Path
	opDetach       = "cni-del"        // Data: Attachment
	opRemovePause  = "runtime-delete" // Name: the container ID, Path: its cgroup dir
	opBuilt        = "built"          // Data: builtRecord
	opDestroying   = "destroying"
	opUndone       = "undone" // Ref: the undone record's Seq
)

func isUndo(op string) bool {
	switch op {
	case opReleaseName, opReleaseLabel, opRemoveDir, opUnmount, opNetnsRemove, opDetach, opRemovePause:
		return true
	}
	return false
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
	sysctls   map[string]string
	log       *slog.Logger

	hostResolv *hostResolv

	prepMu sync.Mutex
	rootfs *spec.PauseRootfs // set by prepare

	labelMu sync.Mutex
	labels  map[string]bool // SELinux process labels this Builder's sandboxes hold

	claimMu sync.Mutex
	claimed bool // the run dir and state dir claim each other (see claim)

	tag string // this Builder's mark on shared resources (netns pins)
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
	b := &Builder{opts: o, log: o.Logger, hostResolv: &hostResolv{path: o.HostResolvConf}, tag: hex.EncodeToString(sum[:4])}
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
	if b.hostCaps, err = spec.HostCapabilities(); err != nil {
		b.hostCaps = spec.DefaultCapabilities // not Linux: privileged pods get the default set
	}
	return b, nil
}

// Options returns the Builder's options, defaults filled in.
func (b *Builder) Options() Options { return b.opts }

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
	if err := b.claim(true, false); err != nil {
		return nil, err
	}
	// The Builder's own directories: a symlink planted at one of them
	// would take every write below it elsewhere (owndir).
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(o.StateDir, "journals"), 0o700},
		{filepath.Join(o.StateDir, "names"), 0o700},
		{filepath.Join(o.StateDir, "pause"), 0o755},
		{filepath.Join(o.RunDir, "journals"), 0o700},
		{filepath.Join(o.RunDir, "names"), 0o700},
		{filepath.Join(o.RunDir, "sandboxes"), 0o700},
		{o.NetnsDir, 0o755},
	} {
		if err := owndir.Make(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	// The network lock's files exist from now on: opening them is then no
	// disk write on a Build's path.
	for _, p := range []string{b.networkGate(), b.networkLock()} {
		lock, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		lock.Close()
	}
	// The durable journals' directories must survive a power loss too.
	if err := atomicfile.SyncDir(o.StateDir); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	rootfs, err := o.Rootfs.PreparePauseRootfs(filepath.Join(o.StateDir, "pause"), o.Pause)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	b.rootfs = rootfs
	return rootfs, nil
}

// sandboxRecord is the journal's first record: what a Builder needs to
// load the sandbox later.
type sandboxRecord struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Config       *Config   `json:"config"`
	Hostname     string    `json:"hostname"`
	BundleDir    string    `json:"bundle_dir"`
	NetnsPath    string    `json:"netns_path,omitempty"`
	Files        Files     `json:"files"`
	ShmSize      int64     `json:"shm_size,omitempty"`
	CgroupParent string    `json:"cgroup_parent"`
	CgroupsPath  string    `json:"cgroups_path"`
	CgroupDir    string    `json:"cgroup_dir"`
	Created      time.Time `json:"created"`
}

// builtRecord marks the sandbox built, with what the build learned.
type builtRecord struct {
	IPs     []netip.Addr `json:"ips,omitempty"`
	Pid     int          `json:"pid,omitempty"` // the pause's, with a Runtime
	Timings []StepTiming `json:"timings"`
}

// StepTiming is how long a step of the Build took.
type StepTiming struct {
	Step     Step          `json:"step"`
	Duration time.Duration `json:"duration"`
}

// build is one Build in progress.
type build struct {
	b       *Builder
	p       *Plan
	j       *journal.Journal
	ips     []netip.Addr
	pid     int // the pause's
	timings []StepTiming
	t0      time.Time // when the current step started
	durable bool      // the journal is on the state dir
}

// Build builds the sandbox cfg asks for and returns it with its bundle
// ready for a runtime. Either it succeeds or the host is left as it was:
// a failed step is rolled back by replaying the journal backwards, on a
// context detached from ctx (so a cancelled ctx still cleans up) with
// Options.UndoTimeout. Errors: a *ConfigError for an invalid config, a
// *NameReservedError for a name in use, else a *StepError naming the step.
func (b *Builder) Build(ctx context.Context, cfg *Config) (*Sandbox, error) {
	start := time.Now()
	if err := b.hook(ctx, "", StepValidate); err != nil {
		return nil, &StepError{Step: StepValidate, Err: err}
	}
	p, err := b.plan(cfg)
	if err != nil {
		return nil, err
	}
	b.holdLabel(p.processLabel)
	bl := &build{b: b, p: p}
	bl.timed(StepValidate, start, nil)
	steps := []struct {
		step Step
		run  func(context.Context) error
		skip bool
	}{
		{StepReserve, bl.reserve, false},
		{StepDirs, bl.dirs, false},
		{StepFiles, bl.files, false},
		{StepRootfs, bl.bindRootfs, false},
		{StepShm, bl.shm, p.HostIPC},
		{StepNetns, bl.netns, p.HostNetwork},
		{StepNetwork, bl.network, p.HostNetwork},
		{StepSpec, bl.spec, false},
		{StepCreate, bl.create, b.opts.Runtime == nil},
		{StepStart, bl.start, b.opts.Runtime == nil},
	}
	last := StepSpec
	if b.opts.Runtime != nil {
		last = StepStart
	}
	for _, s := range steps {
		if s.skip {
			continue
		}
		t0 := time.Now()
		bl.t0 = t0
		err := ctx.Err()
		if err == nil {
			err = b.hook(ctx, p.ID, s.step)
		}
		if err == nil {
			err = s.run(ctx)
		}
		if err == nil && s.step == last {
			err = bl.markBuilt(s.step)
		}
		bl.timed(s.step, t0, err)
		if err != nil {
			return nil, bl.fail(ctx, s.step, err)
		}
	}
	sb := bl.sandbox()
	sb.journal = bl.j.Snapshot()
	bl.j.Close()
	return sb, nil
}

func (b *Builder) hook(ctx context.Context, id string, step Step) error {
	if b.opts.BeforeStep == nil {
		return nil
	}
	return b.opts.BeforeStep(ctx, id, step)
}

func (bl *build) timed(step Step, t0 time.Time, err error) {
	d := time.Since(t0)
	bl.timings = append(bl.timings, StepTiming{Step: step, Duration: d})
	bl.b.log.Debug("sandbox build step", "id", bl.p.ID, "step", string(step), "duration", d, "error", err)
	if bl.b.opts.OnStep != nil {
		bl.b.opts.OnStep(StepEvent{ID: bl.p.ID, Step: step, Duration: d, Err: err})
	}
}

// fail rolls the build back and returns the error to give the caller.
func (bl *build) fail(ctx context.Context, step Step, err error) error {
	var nr *NameReservedError
	if bl.j == nil { // nothing journaled: nothing was done
		bl.b.releaseHeldLabel(bl.p.processLabel)
		if errors.As(err, &nr) {
			return err
		}
		return &StepError{ID: bl.p.ID, Step: step, Err: err}
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bl.b.opts.UndoTimeout)
	defer cancel()
	rerr := bl.b.replay(uctx, bl.p.ID, bl.j)
	bl.j.Close()
	if errors.As(err, &nr) && rerr == nil {
		return err
	}
	return &StepError{ID: bl.p.ID, Step: step, Err: err, RollbackErr: rerr}
}

func (bl *build) record(op, path string, durable bool) error {
	_, err := bl.j.Append(journal.Record{Op: op, Path: path}, durable)
	return err
}

func (bl *build) reserve(context.Context) error {
	b, p := bl.b, bl.p
	if _, err := b.Prepare(); err != nil {
		return err
	}
	// Cheap refusal first: nothing is made for a name that is taken.
	for _, link := range []string{b.volatileName(p.Name), b.durableName(p.Name)} {
		owner, err := b.nameOwner(link)
		if err != nil {
			return err
		}
		if owner != "" {
			return &NameReservedError{Name: p.Name, ID: owner}
		}
	}
	data, err := json.Marshal(sandboxRecord{
		ID: p.ID, Name: p.Name, Config: p.Config, Hostname: p.Hostname, BundleDir: p.BundleDir,
		NetnsPath: p.NetnsPath, Files: p.Files, ShmSize: p.ShmSize, CgroupParent: p.CgroupParent,
		CgroupsPath: p.CgroupsPath, CgroupDir: p.CgroupDir, Created: p.Created,
	})
	if err != nil {
		return err
	}
	first := []journal.Record{{Op: opBegin, Data: data}}
	if p.processLabel != "" {
		// The label's MCS pair, reserved by the plan, goes back when the
		// sandbox does.
		first = append(first, journal.Record{Op: opReleaseLabel, Name: p.processLabel})
	}
	link := b.volatileName(p.Name)
	first = append(first, journal.Record{Op: opReleaseName, Path: link, Name: p.ID})
	// The journal is born with these records and locked: nobody (a
	// Recover, a Destroy) ever sees it empty or unlocked.
	j, err := journal.Create(b.volatileJournal(p.ID), first...)
	if err != nil {
		return err
	}
	bl.j = j
	return bl.symlink(link, false)
}

// symlink makes the name link whose undo is journaled already.
func (bl *build) symlink(path string, durable bool) error {
	err := os.Symlink(bl.p.ID, path)
	if errors.Is(err, fs.ErrExist) {
		// A stale link (its sandbox is gone) is removed by nameOwner.
		owner, oerr := bl.b.nameOwner(path)
		if oerr != nil {
			return oerr
		}
		if owner != "" {
			return &NameReservedError{Name: bl.p.Name, ID: owner}
		}
		err = os.Symlink(bl.p.ID, path)
	}
	if errors.Is(err, fs.ErrExist) {
		owner, _ := os.Readlink(path)
		return &NameReservedError{Name: bl.p.Name, ID: owner}
	}
	if err != nil {
		return err
	}
	if durable {
		return atomicfile.SyncDir(filepath.Dir(path))
	}
	return nil
}

// nameOwner returns the ID holding a name link, "" if none. A link whose
// sandbox has no journal (left by a crash or a hand-made cleanup) is stale:
// it is removed and the name is free.
func (b *Builder) nameOwner(link string) (string, error) {
	owner, err := os.Readlink(link)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if b.alive(owner) {
		return owner, nil
	}
	if _, err := removeLinkTo(link, owner); err != nil {
		return "", err
	}
	return "", nil
}

// removeLinkTo removes the name link if it still holds id. The check and
// the removal happen under a lock on the names directory, so that two
// removers of one stale link cannot take turns and remove a fresh one
// made in between. (Making a link needs no lock: symlink(2) is atomic.)
// It reports whether it removed the link.
func removeLinkTo(link, id string) (bool, error) {
	d, err := os.Open(filepath.Dir(link))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return false, err
	}
	if cur, err := os.Readlink(link); err != nil || cur != id {
		return false, nil // gone, or another sandbox's now
	}
	if err := os.Remove(link); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (bl *build) dirs(context.Context) error {
	if err := bl.record(opRemoveDir, bl.p.BundleDir, false); err != nil {
		return err
	}
	return os.Mkdir(bl.p.BundleDir, 0o700)
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
	if err := bl.record(opUnmount, bl.p.Files.Rootfs, false); err != nil {
		return err
	}
	rootfs, err := bl.b.Prepare()
	if err != nil {
		return err
	}
	return bl.b.opts.Mounter.BindReadOnly(rootfs.Path, bl.p.Files.Rootfs)
}

func (bl *build) shm(context.Context) error {
	if err := bl.record(opUnmount, bl.p.Files.Shm, false); err != nil {
		return err
	}
	return bl.b.opts.Mounter.MountShm(bl.p.Files.Shm, bl.p.ShmSize, bl.p.mountLabel)
}

func (bl *build) netns(context.Context) error {
	if err := bl.record(opNetnsRemove, bl.p.NetnsPath, false); err != nil {
		return err
	}
	path, err := bl.b.opts.NetNS.Create(bl.b.opts.NetnsDir, bl.b.netnsName(bl.p.ID))
	if err == nil && path != bl.p.NetnsPath {
		err = fmt.Errorf("netns pinned at %s, not %s", path, bl.p.NetnsPath)
	}
	return err
}

func (bl *build) attachment() *Attachment {
	p := bl.p
	cfg := p.Config
	a := &Attachment{
		SandboxID: p.ID, NetnsPath: p.NetnsPath,
		PodName: cfg.Metadata.Name, PodNamespace: cfg.Metadata.Namespace, PodUID: cfg.Metadata.UID,
		Annotations: cfg.Annotations, CgroupPath: p.CgroupParent,
	}
	for _, pm := range cfg.PortMappings {
		if pm.HostPort > 0 { // a mapping without a host port publishes nothing
			a.PortMappings = append(a.PortMappings, cni.PortMapping{
				HostPort: pm.HostPort, ContainerPort: pm.ContainerPort,
				Protocol: strings.ToLower(pm.Protocol.String()), HostIP: pm.HostIP,
			})
		}
	}
	if d := cfg.DNSConfig; d != nil && (len(d.Servers) > 0 || len(d.Searches) > 0 || len(d.Options) > 0) {
		a.DNS = &cni.DNS{Servers: d.Servers, Searches: d.Searches, Options: d.Options}
	}
	return a
}

func (bl *build) network(ctx context.Context) error {
	if bl.b.opts.Network == nil {
		return nil // loopback only: lo came up with the namespace
	}
	a := bl.attachment()
	// Prepare first: a configuration that does not load fails the step
	// before anything needs undoing.
	if err := bl.b.opts.Network.Prepare(ctx, a); err != nil {
		if errors.Is(err, cni.ErrLoopbackOnly) {
			return nil // no network configured, and the Network allows it
		}
		return err
	}
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	// A CNI GC (CollectNetwork) must not run between the move of the
	// journal and the end of the ADD: its list of valid sandboxes could
	// miss this one, and its DEL undo the ADD.
	unlock, err := bl.b.lockNetwork(ctx, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	// The IPAM allocation this may make survives a reboot, so must its
	// undo: the journal moves to the state dir, fsynced, with the undo of
	// the attachment and of a name link there (a rebooted node still knows
	// the pod's sandbox), all in one write.
	link := bl.b.durableName(bl.p.Name)
	if err := bl.j.MoveTo(bl.b.durableJournal(bl.p.ID),
		journal.Record{Op: opReleaseName, Path: link, Name: bl.p.ID},
		journal.Record{Op: opDetach, Data: data},
	); err != nil {
		return err
	}
	bl.durable = true
	if err := bl.symlink(link, true); err != nil {
		return err
	}
	res, err := bl.b.opts.Network.Attach(ctx, a)
	if err != nil {
		return err
	}
	if res != nil {
		bl.ips = res.IPs
	}
	if len(bl.ips) > 0 {
		// The pod's own name now resolves to its addresses. The file is
		// already there: replace it atomically.
		return dns.WriteFile(bl.p.Files.Hosts, dns.Hosts(bl.p.Hostname, bl.ips), false)
	}
	return nil
}

func (bl *build) spec(context.Context) error {
	p := bl.p
	if len(bl.ips) > 0 {
		ips := make([]string, len(bl.ips))
		for i, ip := range bl.ips {
			ips[i] = ip.String()
		}
		p.Spec.Annotations[spec.AnnotationIP] = strings.Join(ips, ",")
	}
	// The bundle is this Build's alone until it returns: config.json is
	// written in place (a crash's half file goes with the bundle).
	return spec.Save(p.BundleDir, p.Spec, spec.SaveOptions{New: true})
}

// create creates the pause container, its removal journaled first.
func (bl *build) create(ctx context.Context) error {
	if _, err := bl.j.Append(journal.Record{Op: opRemovePause, Name: bl.p.ID, Path: bl.p.CgroupDir}, bl.durable); err != nil {
		return err
	}
	pid, err := bl.b.opts.Runtime.Create(ctx, bl.p.ID, bl.p.BundleDir)
	bl.pid = pid
	return err
}

func (bl *build) start(ctx context.Context) error { return bl.b.opts.Runtime.Start(ctx, bl.p.ID) }

// markBuilt records that the sandbox is built, with what the Build
// learned, as part of its last step.
func (bl *build) markBuilt(last Step) error {
	timings := append(bl.timings[:len(bl.timings):len(bl.timings)], StepTiming{Step: last, Duration: time.Since(bl.t0)})
	data, err := json.Marshal(builtRecord{IPs: bl.ips, Pid: bl.pid, Timings: timings})
	if err != nil {
		return err
	}
	// Durable when the journal is: after a power loss, a Recover must not
	// take a built sandbox for an unfinished one.
	_, err = bl.j.Append(journal.Record{Op: opBuilt, Data: data}, bl.durable)
	return err
}

func (bl *build) sandbox() *Sandbox {
	p := bl.p
	return &Sandbox{
		ID: p.ID, Name: p.Name, Config: p.Config, Hostname: p.Hostname, BundleDir: p.BundleDir,
		NetnsPath: p.NetnsPath, IPs: bl.ips, Files: p.Files, ShmSize: p.ShmSize,
		CgroupParent: p.CgroupParent, CgroupsPath: p.CgroupsPath, CgroupDir: p.CgroupDir,
		Created: p.Created, Timings: bl.timings, State: StateBuilt, Spec: p.Spec, PausePid: bl.pid, b: bl.b,
	}
}
