package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
	"github.com/podsmith/podsmith/spec"
)

func podConfig(name string) *pod.Config {
	return &pod.Config{
		Metadata:     pod.Metadata{Name: name, Namespace: "default", UID: name + "-uid", Attempt: 1},
		Hostname:     name,
		PortMappings: []pod.PortMapping{{ContainerPort: 80, HostPort: 8080}},
		Labels:       map[string]string{"app": name},
		Annotations:  map[string]string{"example.com/note": "hello"},
		Linux:        &pod.LinuxConfig{Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}},
	}
}

// tree lists every path under the Builder's directories (and the fake
// host's attachments and containers): what a test compares to see that nothing is left.
func tree(t *testing.T, b *sandbox.Builder, h *sandboxtest.Host) []string {
	t.Helper()
	o := b.Options()
	var out []string
	for _, root := range []string{
		filepath.Join(o.StateDir, "journals"), filepath.Join(o.StateDir, "names"),
		filepath.Join(o.RunDir, "sandboxes"), o.NetnsDir,
	} {
		require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return nil // not prepared yet
			}
			if err != nil {
				return err
			}
			if p != root {
				out = append(out, p)
			}
			return nil
		}))
	}
	left, err := h.Left()
	require.NoError(t, err)
	for _, l := range left {
		out = append(out, "host: "+l)
	}
	sort.Strings(out)
	return out
}

// inGroupOrder puts the operations of group, which a Build or Destroy runs
// at once, in the group's order, each of them in one of the places they
// took: a test can then compare a sequence.
func inGroupOrder(kinds []string, group ...string) []string {
	out := slices.Clone(kinds)
	var at []int
	for i, k := range out {
		if slices.Contains(group, k) {
			at = append(at, i)
		}
	}
	got := make([]string, len(at))
	for j, i := range at {
		got[j] = out[i]
	}
	slices.SortStableFunc(got, func(a, b string) int { return slices.Index(group, a) - slices.Index(group, b) })
	for j, i := range at {
		out[i] = got[j]
	}
	return out
}

func TestBuildAndDestroy(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	before := tree(t, b, h)
	ctx := context.Background()
	cfg := podConfig("web")
	sb, err := b.Build(ctx, cfg)
	require.NoError(t, err)

	assert.Len(t, sb.ID, 64)
	assert.Equal(t, "k8s_web_default_web-uid_1", sb.Name)
	assert.Equal(t, sandbox.StateBuilt, sb.State)
	assert.Equal(t, "web", sb.Hostname)
	require.Len(t, sb.IPs, 1)
	assert.Equal(t, "198.18.0.1", sb.IPs[0].String())
	var steps []sandbox.Step
	for _, st := range sb.Timings {
		steps = append(steps, st.Step)
	}
	assert.Equal(t, stepsOf(false), steps)

	read := func(p string) string {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		return string(b)
	}
	assert.Equal(t, "nameserver 192.0.2.53\nsearch example.test\n", read(sb.Files.ResolvConf))
	assert.Equal(t, "web\n", read(sb.Files.Hostname))
	assert.Contains(t, read(sb.Files.Hosts), "198.18.0.1\tweb\n")
	saved, err := spec.Load(sb.BundleDir)
	require.NoError(t, err)
	assert.Equal(t, sb.ID, saved.Annotations[spec.AnnotationSandboxID])
	assert.Equal(t, "hello", saved.Annotations["example.com/note"], "the pod's annotations pass through")
	assert.Equal(t, sb.Spec.Annotations, saved.Annotations)
	assert.Equal(t, "rootfs", saved.Root.Path)
	assert.Equal(t, map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}, saved.Linux.Sysctl)

	kinds := func() []string {
		var k []string
		for _, op := range h.Ops() {
			k = append(k, op.Kind)
		}
		return k
	}
	assert.Equal(t, []string{"bind", "mount-shm", "netns-create", "prepare", "attach", "create", "start"}, inGroupOrder(kinds(), "prepare", "attach", "create"))
	assert.Equal(t, 1<<23, sb.PausePid, "the fake runtime's PID")
	st, err := sb.PauseState(ctx)
	require.NoError(t, err)
	assert.Equal(t, specs.StateRunning, st.Status)

	// Found by ID, by name, in List, and by a new Builder on the same
	// directories.
	for _, ref := range []string{sb.ID, sb.Name} {
		got, err := b.Find(ref)
		require.NoError(t, err, ref)
		assert.Equal(t, sb.ID, got.ID)
	}
	list, err := b.List()
	require.NoError(t, err)
	require.Len(t, list, 1)
	b2, err := sandbox.NewBuilder(b.Options())
	require.NoError(t, err)
	loaded, err := b2.Find(sb.ID)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateBuilt, loaded.State)
	assert.Equal(t, sb.IPs, loaded.IPs)
	assert.Equal(t, sb.Files, loaded.Files)
	assert.Equal(t, sb.CgroupsPath, loaded.CgroupsPath)
	assert.True(t, sb.Created.Equal(loaded.Created))
	assert.Equal(t, cfg, loaded.Config)
	assert.Len(t, loaded.Timings, len(stepsOf(false)))
	assert.Equal(t, saved, loaded.Spec)

	// The name is taken.
	_, err = b.Build(ctx, podConfig("web"))
	var nr *sandbox.NameReservedError
	require.ErrorAs(t, err, &nr)
	assert.Equal(t, sb.ID, nr.ID)
	assert.ErrorIs(t, err, sandbox.ErrNameReserved)

	// Destroyed by the second Builder: everything goes, in reverse.
	require.NoError(t, loaded.Destroy(ctx))
	assert.Equal(t, before, tree(t, b, h))
	// The pause is killed and its netns unpinned first; then its delete
	// and the network's detach run at once.
	assert.Equal(t, []string{"bind", "mount-shm", "netns-create", "prepare", "attach", "create", "start",
		"kill", "netns-remove", "delete", "cgroup-remove", "detach", "unmount", "unmount"},
		inGroupOrder(inGroupOrder(kinds(), "prepare", "attach", "create"), "delete", "cgroup-remove", "detach"))
	require.NoError(t, sb.Destroy(ctx), "destroy twice")
	_, err = b.Find(sb.ID)
	require.ErrorIs(t, err, sandbox.ErrNotFound)
	_, err = b.Find(sb.Name)
	require.ErrorIs(t, err, sandbox.ErrNotFound)
	list, err = b.List()
	require.NoError(t, err)
	assert.Empty(t, list)

	// The name is free again.
	sb2, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	require.NoError(t, sb2.Destroy(ctx))
}

func TestFindErrors(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	var ids []string
	for i := range 20 {
		sb, err := b.Build(ctx, podConfig(fmt.Sprintf("pod-%d", i)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = sb.Destroy(ctx) })
		ids = append(ids, sb.ID)
	}
	for _, ref := range []string{"", "nope", "../../etc", strings.Repeat("f", 64), "zz", ids[0][:12]} {
		_, err := b.Find(ref)
		require.ErrorIs(t, err, sandbox.ErrNotFound, ref)
	}
	for _, bad := range []string{"", "x", "../" + ids[0], ids[0] + "0"} {
		_, err := b.Find(bad)
		require.ErrorIs(t, err, sandbox.ErrNotFound, bad)
		require.ErrorIs(t, destroyID(ctx, b, bad), sandbox.ErrNotFound)
	}
}

func TestFailAtEveryStep(t *testing.T) {
	for _, mode := range crashModes {
		t.Run(mode.name, func(t *testing.T) { failAtEveryStep(t, mode) })
	}
}

func failAtEveryStep(t *testing.T, mode buildMode) {
	var opts sandbox.Options
	mode.apply(&opts)
	podConfig := mode.config
	b, h := sandboxtest.NewBuilder(t, opts)
	before := tree(t, b, h)
	ctx := context.Background()
	for _, step := range stepsOf(mode.noPause) {
		t.Run(string(step), func(t *testing.T) {
			injected := fmt.Errorf("injected at %s", step)
			h.FailAt(step, injected)
			_, err := b.Build(ctx, podConfig("web"))
			h.FailAt(step, nil)
			require.ErrorIs(t, err, injected)
			var se *sandbox.StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, step, se.Step)
			assert.NoError(t, se.RollbackErr)
			assert.Contains(t, err.Error(), "step "+string(step))
			assert.Equal(t, before, tree(t, b, h), "nothing left after a failure at %s", step)

			sb, err := b.Build(ctx, podConfig("web"))
			require.NoError(t, err, "the name is free again")
			require.NoError(t, sb.Destroy(ctx))
			assert.Equal(t, before, tree(t, b, h))
		})
	}
}

func TestCancelledContextRollsBack(t *testing.T) {
	for _, step := range stepsOf(false)[1:] {
		t.Run(string(step), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b, h := sandboxtest.NewBuilder(t, beforeStep(sandbox.Options{}, func(_ context.Context, _ string, s sandbox.Step) error {
				if s == step {
					cancel() // the caller gives up while the step runs
				}
				return nil
			}))
			before := tree(t, b, h)
			_, err := b.Build(ctx, podConfig("web"))
			if step == sandbox.StepStart {
				// Cancelled during the last step: it completes (nothing
				// after it checks the context), and the sandbox is built.
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, context.Canceled)
			var se *sandbox.StepError
			require.ErrorAs(t, err, &se)
			assert.NoError(t, se.RollbackErr, "rollback runs on a context of its own")
			assert.Equal(t, before, tree(t, b, h))
		})
	}
}

func TestRollbackFailureStaysInTheJournal(t *testing.T) {
	var shm string
	var b *sandbox.Builder
	injected := errors.New("injected at netns")
	b, h := sandboxtest.NewBuilder(t, beforeStep(sandbox.Options{}, func(_ context.Context, id string, s sandbox.Step) error {
		if s != sandbox.StepNetns || shm != "" {
			return nil
		}
		// Something writes into the (fake) shm mount, so unmounting it
		// fails during the rollback.
		shm = filepath.Join(b.Options().RunDir, "sandboxes", id, "shm", "busy")
		if err := os.WriteFile(shm, nil, 0o600); err != nil {
			return err
		}
		return injected
	}))
	ctx := context.Background()
	before := tree(t, b, h)
	_, err := b.Build(ctx, podConfig("web"))
	var se *sandbox.StepError
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, injected)
	require.Error(t, se.RollbackErr)
	assert.Contains(t, se.RollbackErr.Error(), "unmount")

	// The sandbox is listed as needing cleanup. Its name was released
	// (every undo runs): a retry of the pod gets a new sandbox at once,
	// whose paths are its own.
	list, err := b.List()
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, sandbox.StateNeedsCleanup, list[0].State)
	assert.Equal(t, se.ID, list[0].ID)
	assert.Equal(t, "k8s_web_default_web-uid_1", list[0].Name)
	retry, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	require.NoError(t, retry.Destroy(ctx))

	// A Destroy retries what is left and finishes the job.
	require.NoError(t, destroyID(ctx, b, se.ID))
	assert.Equal(t, before, tree(t, b, h))
}

func TestConcurrentBuildsOfOneName(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	before := tree(t, b, h)
	winner := contend(t, b, "web")
	require.NoError(t, winner.Destroy(context.Background()))
	assert.Equal(t, before, tree(t, b, h))
}

// contend runs 4 Builds of one pod at once and returns the one that won
// its name, having checked that each other was told, with a typed error,
// who holds it.
func contend(t *testing.T, b *sandbox.Builder, name string) *sandbox.Sandbox {
	t.Helper()
	var wg sync.WaitGroup
	results := make([]error, 4)
	sbs := make([]*sandbox.Sandbox, 4)
	for i := range results {
		wg.Go(func() { sbs[i], results[i] = b.Build(context.Background(), podConfig(name)) })
	}
	wg.Wait()
	var winner *sandbox.Sandbox
	for i, err := range results {
		if err == nil {
			require.Nil(t, winner, "two builds won the same name")
			winner = sbs[i]
		}
	}
	require.NotNil(t, winner)
	for _, err := range results {
		if err != nil {
			var nr *sandbox.NameReservedError
			require.ErrorAs(t, err, &nr)
			assert.Equal(t, winner.ID, nr.ID)
		}
	}
	return winner
}

func TestConcurrentCycles(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	before := tree(t, b, h)
	cycles(t, b, 4, 25, "pod")
	assert.Equal(t, before, tree(t, b, h))
}

// cycles runs n Build+Destroy cycles on each of g goroutines, each pod
// named apart, and fails the test with the errors of any.
func cycles(t *testing.T, b *sandbox.Builder, g, n int, prefix string) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for w := range g {
		wg.Go(func() {
			for i := range n {
				sb, err := b.Build(ctx, podConfig(fmt.Sprintf("%s-%d-%d", prefix, w, i)))
				if err == nil {
					err = sb.Destroy(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// heldBuild is a Build of "web" held at the start of its network step,
// its journal locked, until release is closed; built gets its result.
type heldBuild struct {
	b       *sandbox.Builder
	h       *sandboxtest.Host
	id      string
	release chan struct{}
	built   chan error
}

func holdBuild(t *testing.T) *heldBuild {
	t.Helper()
	reached := make(chan string)
	hb := &heldBuild{release: make(chan struct{}), built: make(chan error, 1)}
	hb.b, hb.h = sandboxtest.NewBuilder(t, beforeStep(sandbox.Options{}, func(_ context.Context, id string, s sandbox.Step) error {
		if s == sandbox.StepNetwork {
			reached <- id
			<-hb.release
		}
		return nil
	}))
	go func() {
		_, err := hb.b.Build(context.Background(), podConfig("web"))
		hb.built <- err
	}()
	hb.id = <-reached
	return hb
}

func TestDestroyWaitsForABuildInProgress(t *testing.T) {
	hb := holdBuild(t)
	b, id := hb.b, hb.id
	ctx := context.Background()
	sb, err := b.Find(id)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateBuilding, sb.State, "a build in progress holds its journal's lock")
	destroyed := make(chan error, 1)
	go func() { destroyed <- destroyID(ctx, b, id) }()
	close(hb.release)
	require.NoError(t, <-hb.built)
	require.NoError(t, <-destroyed)
	assert.Empty(t, tree(t, b, hb.h), "the Destroy ran after the Build, on the built sandbox")
}

// A Destroy whose context ends while it waits for a Build gives up and
// changes nothing; the Build finishes as if it had not been asked.
func TestDestroyGivesUpWaitingWithItsContext(t *testing.T) {
	hb := holdBuild(t)
	b, id := hb.b, hb.id
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	err := destroyID(cancelled, b, id)
	require.ErrorIs(t, err, context.Canceled)
	sb, err := b.Find(id)
	require.NoError(t, err)
	err = sb.Stop(cancelled)
	require.ErrorIs(t, err, context.Canceled)
	close(hb.release)
	require.NoError(t, <-hb.built)
	sb, err = b.Find(id)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateBuilt, sb.State)
	assert.NotEmpty(t, sb.IPs, "the network was not released")
	require.NoError(t, sb.Destroy(context.Background()))
	assert.Empty(t, tree(t, b, hb.h))
}

func TestHostNamespacesPod(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{NodeHostname: func() (string, error) { return "node-1", nil }})
	ctx := context.Background()
	cfg := podConfig("hostnet")
	cfg.Hostname = ""
	cfg.Linux = &pod.LinuxConfig{SecurityContext: &pod.SecurityContext{NamespaceOptions: &pod.NamespaceOptions{
		Network: pod.NamespaceNode, Pid: pod.NamespaceNode, Ipc: pod.NamespaceNode,
	}}}
	sb, err := b.Build(ctx, cfg)
	require.NoError(t, err)
	assert.Equal(t, "node-1", sb.Hostname)
	assert.Empty(t, sb.NetnsPath)
	assert.Empty(t, sb.IPs)
	assert.Equal(t, "/dev/shm", sb.Files.Shm)
	assert.Equal(t, []sandboxtest.Op{{Kind: "bind", Path: sb.Files.Rootfs}, {Kind: "create", Path: sb.ID}, {Kind: "start", Path: sb.ID}},
		h.Ops(), "no netns, no shm, no network")
	for _, ns := range sb.Spec.Linux.Namespaces {
		assert.NotContains(t, []string{"network", "uts", "pid", "ipc"}, string(ns.Type))
	}
	assert.Empty(t, sb.Spec.Hostname)
	require.NoError(t, sb.Destroy(ctx))
}

func TestLoopbackOnlyBuilder(t *testing.T) {
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	opts := sandbox.Options{StateDir: dir + "/state", RunDir: dir + "/run", NetnsDir: dir + "/netns"}
	require.NoError(t, h.Apply(&opts))
	opts.Network = nil // loopback only
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	sb, err := b.Build(context.Background(), podConfig("lo"))
	require.NoError(t, err)
	assert.Empty(t, sb.IPs)
	require.NoError(t, sb.Destroy(context.Background()))
}

func TestStaleNameLinkIsReplaced(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	sb, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	// Someone removes the sandbox's journal by hand: its name links are
	// stale.
	require.NoError(t, os.Remove(journalOf(t, b, sb.ID)))
	sb2, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	assert.NotEqual(t, sb.ID, sb2.ID)
	require.NoError(t, sb2.Destroy(ctx))
	rep, err := b.Recover(ctx)
	require.NoError(t, err)
	// Its netns pin is this Builder's: swept. Its bundle is not swept: a
	// run dir may be shared with Builders of other state dirs, whose live
	// bundles have no journal here; only one of an earlier boot is.
	assert.Equal(t, []string{sb.NetnsPath}, rep.Orphans, "Recover sweeps the pin the lost sandbox left")
	assert.DirExists(t, sb.BundleDir)
}

// A name link's target fits in its inode (under 60 bytes on ext4): a
// longer one costs a disk block.
func TestNameLinkFitsInItsInode(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	sb, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	names := filepath.Join(b.Options().StateDir, "names")
	ents, err := os.ReadDir(names)
	require.NoError(t, err)
	require.Len(t, ents, 1)
	target, err := os.Readlink(filepath.Join(names, ents[0].Name()))
	require.NoError(t, err)
	assert.Less(t, len(target), 60)
	require.NoError(t, sb.Destroy(ctx))
}

func TestOnStepAndLogger(t *testing.T) {
	var mu sync.Mutex
	var events []sandbox.StepEvent
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{OnStep: func(e sandbox.StepEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}})
	sb, err := b.Build(context.Background(), podConfig("web"))
	require.NoError(t, err)
	require.Len(t, events, len(stepsOf(false)))
	var steps []string
	for _, e := range events {
		steps = append(steps, string(e.Step))
		assert.Equal(t, sb.ID, e.ID)
		assert.NoError(t, e.Err)
	}
	// network and create run at once: either may report first.
	var want []string
	for _, s := range stepsOf(false) {
		want = append(want, string(s))
	}
	assert.Equal(t, want, inGroupOrder(steps, "network", "create"))
	require.NoError(t, sb.Destroy(context.Background()))
}

func TestNewBuilderRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	for name, o := range map[string]sandbox.Options{
		"relative state dir":   {StateDir: "state"},
		"unclean run dir":      {RunDir: dir + "/run/../run"},
		"unknown manager":      {CgroupManager: "upstart"},
		"slice with cgroupfs":  {CgroupParent: "kubepods.slice"},
		"shm over its cap":     {ShmSize: 2 << 30, MaxShmSize: 1 << 30},
		"node-wide sysctl":     {DefaultSysctls: map[string]string{"kernel.panic": "1"}},
		"localhost as default": {Seccomp: sandbox.SeccompOptions{Unset: pod.ProfileLocalhost}},
	} {
		t.Run(name, func(t *testing.T) {
			h, err := sandboxtest.NewHost(filepath.Join(dir, name))
			require.NoError(t, err)
			if o.StateDir == "" {
				o.StateDir = filepath.Join(dir, name, "state")
			}
			require.NoError(t, h.Apply(&o))
			_, err = sandbox.NewBuilder(o)
			require.ErrorIs(t, err, sandbox.ErrInvalidConfig)
			var ce *sandbox.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.True(t, strings.HasPrefix(ce.Problems[0].Field, "Options."), ce.Problems[0].Field)
		})
	}
}

func TestJournalRecordsComeFirst(t *testing.T) {
	// At every step, before the step acts, the journal must already hold
	// the undo of everything done so far: read it from the hook.
	var mu sync.Mutex
	snapshots := map[sandbox.Step][]string{}
	var b *sandbox.Builder
	b, _ = sandboxtest.NewBuilder(t, beforeStep(sandbox.Options{}, func(_ context.Context, id string, s sandbox.Step) error {
		if id == "" {
			return nil
		}
		var ops []string
		var err error
		if p := journalPath(b, id); p != "" {
			ops, err = journalOps(p)
		}
		mu.Lock()
		snapshots[s] = ops
		mu.Unlock()
		return err
	}))
	sb, err := b.Build(context.Background(), podConfig("web"))
	require.NoError(t, err)
	base := []string{"begin", "release-name"}
	made := append(base, "remove-dir", "unmount", "unmount", "netns-remove")
	want := map[sandbox.Step][]string{
		sandbox.StepReserve: nil,
		sandbox.StepDirs:    base,
		sandbox.StepFiles:   append(base, "remove-dir"),
		sandbox.StepRootfs:  append(base, "remove-dir"),
		sandbox.StepShm:     append(base, "remove-dir", "unmount"),
		sandbox.StepNetns:   append(base, "remove-dir", "unmount", "unmount"),
		sandbox.StepSpec:    made,
	}
	for s, ops := range want {
		assert.Equal(t, ops, snapshots[s], "before %s", s)
	}
	// network and create run at once: before each, the journal may hold
	// the other's record already, not its own. Before start, both: the
	// attachment recorded before the attach, the container's removal
	// before its create.
	for s, other := range map[sandbox.Step]string{sandbox.StepNetwork: "runtime-delete", sandbox.StepCreate: "net-detach"} {
		ops := snapshots[s]
		require.GreaterOrEqual(t, len(ops), len(made), "before %s", s)
		assert.Equal(t, made, ops[:len(made)], "before %s", s)
		for _, op := range ops[len(made):] {
			assert.Equal(t, other, op, "before %s", s)
		}
	}
	assert.ElementsMatch(t, append(slices.Clone(made), "net-detach", "runtime-delete"), snapshots[sandbox.StepStart])
	assert.Equal(t, made, snapshots[sandbox.StepStart][:len(made)])
	require.NoError(t, sb.Destroy(context.Background()))
}

// journalPath returns the path of a sandbox's journal, "" if it has none.
func journalPath(b *sandbox.Builder, id string) string {
	p := filepath.Join(b.Options().StateDir, "journals", id)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// journalOps reads the ops of a journal's records from its file, as a
// process that does not use the journal package would: JSON lines, up to
// the NUL bytes of the reserve. A line without its newline is a record
// being written while we read (the network and create steps run at the same
// time), not yet one of the journal's.
func journalOps(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data, _, _ = bytes.Cut(data, []byte{0})
	if end := bytes.LastIndexByte(data, '\n'); end >= 0 {
		data = data[:end+1]
	}
	var ops []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r struct{ Op string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, err
		}
		ops = append(ops, r.Op)
	}
	return ops, nil
}

func journalOf(t *testing.T, b *sandbox.Builder, id string) string {
	t.Helper()
	p := journalPath(b, id)
	require.NotEmpty(t, p, "sandbox %s has a journal", id)
	return p
}

// A journal has one home, the state dir, from the first step to the end
// of the Destroy; with the name link beside it.
func TestTheJournalHasOneHome(t *testing.T) {
	var b *sandbox.Builder
	var seen []string
	b, _ = sandboxtest.NewBuilder(t, beforeStep(sandbox.Options{}, func(_ context.Context, id string, s sandbox.Step) error {
		if s != sandbox.StepValidate && s != sandbox.StepReserve {
			seen = append(seen, journalPath(b, id))
		}
		return nil
	}))
	sb, err := b.Build(context.Background(), podConfig("web"))
	require.NoError(t, err)
	o := b.Options()
	home := filepath.Join(o.StateDir, "journals", sb.ID)
	for _, p := range seen {
		assert.Equal(t, home, p)
	}
	ops, err := journalOps(home)
	require.NoError(t, err)
	assert.Equal(t, []string{"begin", "release-name", "remove-dir", "unmount", "unmount", "netns-remove", "net-detach", "runtime-delete", "built"},
		inGroupOrder(ops, "net-detach", "runtime-delete"))
	names, err := os.ReadDir(filepath.Join(o.StateDir, "names"))
	require.NoError(t, err)
	assert.Len(t, names, 1)
	require.NoError(t, sb.Destroy(context.Background()))
	assert.NoFileExists(t, home)
	names, err = os.ReadDir(filepath.Join(o.StateDir, "names"))
	require.NoError(t, err)
	assert.Empty(t, names)
}

func TestNodeResolvConfChangesAreSeen(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	require.NoError(t, os.WriteFile(resolv, []byte("nameserver 192.0.2.1\n"), 0o644))
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{HostResolvConf: resolv})
	cfg := podConfig("web")
	check := func(want string) {
		t.Helper()
		sb, err := b.Build(context.Background(), cfg)
		require.NoError(t, err)
		got, err := os.ReadFile(sb.Files.ResolvConf)
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
		require.NoError(t, sb.Destroy(context.Background()))
	}
	check("nameserver 192.0.2.1\n")
	check("nameserver 192.0.2.1\n")
	// Replaced (as resolvconf and NetworkManager do: a new file renamed
	// over the old), then rewritten in place with another size.
	tmp := resolv + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte("nameserver 192.0.2.2\n"), 0o644))
	require.NoError(t, os.Rename(tmp, resolv))
	check("nameserver 192.0.2.2\n")
	require.NoError(t, os.WriteFile(resolv, []byte("nameserver 192.0.2.33\n"), 0o644))
	check("nameserver 192.0.2.33\n")
	// Only loopback servers now: pods without a DNS config are refused.
	require.NoError(t, os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644))
	_, err := b.Build(context.Background(), cfg)
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "dns_config", ce.Problems[0].Field)
	require.NoError(t, os.Remove(resolv))
	_, err = b.Build(context.Background(), cfg)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestNewBuilderWritesNothingAndPrepareReportsThePauseBinary(t *testing.T) {
	dir := t.TempDir()
	opts, err := realOptionsAt(dir, sandbox.Options{})
	require.NoError(t, err)
	t.Setenv("PATH", t.TempDir()) // no catatonit anywhere
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 1, "only the test's resolv.conf: NewBuilder made nothing")

	// Plan needs nothing prepared.
	p, err := b.Plan(podConfig("web"))
	require.NoError(t, err)
	assert.Equal(t, []string{"/pause", "-P"}, p.Spec.Process.Args)
	list, err := b.List()
	require.NoError(t, err)
	assert.Empty(t, list)

	_, err = b.Prepare()
	require.ErrorIs(t, err, spec.ErrNoPauseBinary)
	_, err = b.Build(context.Background(), podConfig("web"))
	var se *sandbox.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, sandbox.StepReserve, se.Step)
	require.ErrorIs(t, err, spec.ErrNoPauseBinary)
	assert.Contains(t, err.Error(), "install catatonit")
}

func TestStop(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	before := tree(t, b, h)
	ctx := context.Background()
	sb, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	require.NoError(t, sb.Stop(ctx))
	assert.Empty(t, sb.IPs)
	assert.Zero(t, sb.PausePid)
	assert.Equal(t, sandbox.StateStopped, sb.State)
	left, err := h.Left()
	require.NoError(t, err)
	assert.Equal(t, []string{"mount " + sb.Files.Rootfs, "mount " + sb.Files.Shm}, left,
		"the pause, the address and the netns are gone; the rest stays")
	loaded, err := b.Find(sb.ID)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateStopped, loaded.State, "not ready")
	assert.Empty(t, loaded.IPs)
	assert.NoFileExists(t, sb.NetnsPath)
	assert.DirExists(t, sb.BundleDir)
	require.NoError(t, loaded.Stop(ctx), "twice")

	require.NoError(t, sb.Destroy(ctx))
	var detaches int
	for _, op := range h.Ops() {
		if op.Kind == "detach" {
			detaches++
		}
	}
	assert.Equal(t, 1, detaches, "Destroy does not detach again")
	assert.Equal(t, before, tree(t, b, h))
	require.NoError(t, sb.Stop(ctx), "after Destroy: nothing to do")

	// A sandbox without a network: nothing to release.
	cfg := podConfig("host")
	cfg.Linux = &pod.LinuxConfig{SecurityContext: &pod.SecurityContext{NamespaceOptions: &pod.NamespaceOptions{Network: pod.NamespaceNode}}}
	cfg.Hostname = ""
	hsb, err := b.Build(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, hsb.Stop(ctx))
	require.NoError(t, hsb.Destroy(ctx))
}

func TestLogDirectoryInsideTheBuildersDirsIsRefused(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	o := b.Options()
	for _, d := range []string{o.StateDir, o.RunDir + "/sandboxes/x", o.NetnsDir + "/logs"} {
		cfg := podConfig("web")
		cfg.LogDirectory = d
		_, err := b.Plan(cfg)
		var ce *sandbox.ConfigError
		require.ErrorAs(t, err, &ce, d)
		assert.Equal(t, "log_directory", ce.Problems[0].Field)
	}
}

// loopbackOnly is a Network whose Prepare says no network is configured.
type loopbackOnly struct{ sandbox.Network }

func (loopbackOnly) Prepare(context.Context, *sandbox.NetworkAttachment) error {
	return fmt.Errorf("wrapped: %w", sandbox.ErrNoNetwork)
}

func TestNetworkThatIsNotConfiguredGivesLoopbackOnly(t *testing.T) {
	var b *sandbox.Builder
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	before := tree(t, b, h)
	o := b.Options()
	o.Network = loopbackOnly{o.Network}
	b2, err := sandbox.NewBuilder(o)
	require.NoError(t, err)
	sb, err := b2.Build(context.Background(), podConfig("web"))
	require.NoError(t, err)
	assert.Empty(t, sb.IPs)
	assert.NotEmpty(t, sb.NetnsPath)
	require.ErrorIs(t, sb.CheckNetwork(context.Background()), sandbox.ErrNotFound)
	require.NoError(t, sb.Destroy(context.Background()))
	assert.Equal(t, before, tree(t, b, h))
}

// destroyID destroys the sandbox with the given ID, if there is one.
func destroyID(ctx context.Context, b *sandbox.Builder, id string) error {
	sb, err := b.Find(id)
	if err != nil {
		return err
	}
	return sb.Destroy(ctx)
}

// After a reboot every sandbox of the earlier boot behaves the same,
// networked or not: listed as stopped (not ready), undone by Recover.
func TestSandboxesOfAnEarlierBoot(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	before := tree(t, b, h)
	ctx := context.Background()
	hostNet := podConfig("hostnet")
	hostNet.Hostname = ""
	hostNet.Linux = &pod.LinuxConfig{SecurityContext: &pod.SecurityContext{NamespaceOptions: &pod.NamespaceOptions{Network: pod.NamespaceNode}}}
	var ids []string
	for _, cfg := range []*pod.Config{podConfig("web"), hostNet} {
		sb, err := b.Build(ctx, cfg)
		require.NoError(t, err)
		ofAnEarlierBoot(t, b, sb.ID)
		ids = append(ids, sb.ID)
	}
	list, err := b.List()
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, sb := range list {
		assert.Equal(t, sandbox.StateStopped, sb.State, sb.Name)
		assert.Zero(t, sb.PausePid)
	}
	rep, err := b.Recover(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, ids, rep.Destroyed)
	assert.Equal(t, before, tree(t, b, h))
}

// Reads change nothing on disk: a stale name link stays until a Build
// that wants the name, or Recover, removes it.
func TestReadsDoNotWrite(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	sb, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	require.NoError(t, os.Remove(journalOf(t, b, sb.ID)))
	names := filepath.Join(b.Options().StateDir, "names")
	links, err := os.ReadDir(names)
	require.NoError(t, err)
	require.Len(t, links, 1)
	_, err = b.Find(sb.Name)
	require.ErrorIs(t, err, sandbox.ErrNotFound)
	_, err = b.Find(sb.ID)
	require.ErrorIs(t, err, sandbox.ErrNotFound)
	_, err = b.List()
	require.NoError(t, err)
	after, err := os.ReadDir(names)
	require.NoError(t, err)
	assert.Len(t, after, 1, "the stale link is still there")
	_, err = b.Recover(ctx)
	require.NoError(t, err)
	after, err = os.ReadDir(names)
	require.NoError(t, err)
	assert.Empty(t, after, "Recover removed it")
}
