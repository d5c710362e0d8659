package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
	"github.com/podsmith/podsmith/spec"
)

func podConfig(name string) *sandbox.Config {
	return &sandbox.Config{
		Metadata:     sandbox.Metadata{Name: name, Namespace: "default", UID: name + "-uid", Attempt: 1},
		Hostname:     name,
		PortMappings: []sandbox.PortMapping{{ContainerPort: 80, HostPort: 8080}},
		Labels:       map[string]string{"app": name},
		Annotations:  map[string]string{"example.com/note": "hello"},
		Linux:        &sandbox.LinuxConfig{Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}},
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
		filepath.Join(o.RunDir, "journals"), filepath.Join(o.RunDir, "names"),
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
	att, err := h.Attachments()
	require.NoError(t, err)
	for _, a := range att {
		out = append(out, "attachment:"+a)
	}
	containers, err := h.Containers()
	require.NoError(t, err)
	for _, c := range containers {
		out = append(out, "container:"+c)
	}
	sort.Strings(out)
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
	assert.Equal(t, sandbox.Steps(), steps)

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
	assert.Equal(t, "198.18.0.1", saved.Annotations[spec.AnnotationIP])
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
	assert.Equal(t, []string{"bind", "mount-shm", "netns-create", "prepare", "attach", "create", "start"}, kinds())
	assert.Equal(t, 1<<23, sb.PausePid, "the fake runtime's PID")
	st, err := sb.PauseState(ctx)
	require.NoError(t, err)
	assert.Equal(t, specs.StateRunning, st.Status)

	// Found by ID, by a prefix of it, by name, in List, and by a new
	// Builder on the same directories.
	for _, ref := range []string{sb.ID, sb.ID[:12], sb.Name} {
		got, err := b.Find(ref)
		require.NoError(t, err, ref)
		assert.Equal(t, sb.ID, got.ID)
	}
	list, err := b.List()
	require.NoError(t, err)
	require.Len(t, list, 1)
	b2, err := sandbox.NewBuilder(b.Options())
	require.NoError(t, err)
	loaded, err := b2.Load(sb.ID)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateBuilt, loaded.State)
	assert.Equal(t, sb.IPs, loaded.IPs)
	assert.Equal(t, sb.Files, loaded.Files)
	assert.Equal(t, sb.CgroupsPath, loaded.CgroupsPath)
	assert.True(t, sb.Created.Equal(loaded.Created))
	assert.Equal(t, cfg, loaded.Config)
	assert.Len(t, loaded.Timings, len(sandbox.Steps()))
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
	assert.Equal(t, []string{"bind", "mount-shm", "netns-create", "prepare", "attach", "create", "start",
		"kill", "delete", "detach", "netns-remove", "unmount", "unmount"}, kinds(), "the pause goes first")
	require.NoError(t, sb.Destroy(ctx), "destroy twice")
	_, err = b.Load(sb.ID)
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
	for _, ref := range []string{"", "nope", "../../etc", strings.Repeat("f", 64), "zz"} {
		_, err := b.Find(ref)
		require.ErrorIs(t, err, sandbox.ErrNotFound, ref)
	}
	// 20 random IDs share their first hex digit often: an ambiguous prefix
	// is its own error, not "not found" (a caller must not take it for a
	// sandbox that is gone).
	byFirst := map[byte]int{}
	for _, id := range ids {
		byFirst[id[0]]++
	}
	for c, n := range byFirst {
		if n > 1 {
			_, err := b.Find(string(c))
			require.ErrorIs(t, err, sandbox.ErrAmbiguous)
			require.NotErrorIs(t, err, sandbox.ErrNotFound)
			assert.Contains(t, err.Error(), "more than one")
			break
		}
	}
	for _, bad := range []string{"", "x", "../" + ids[0], ids[0] + "0"} {
		_, err := b.Load(bad)
		require.ErrorIs(t, err, sandbox.ErrNotFound, bad)
		require.ErrorIs(t, b.Destroy(ctx, bad), sandbox.ErrNotFound)
	}
}

func TestFailAtEveryStep(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	before := tree(t, b, h)
	ctx := context.Background()
	for _, step := range sandbox.Steps() {
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
	for _, step := range sandbox.Steps()[1:] {
		t.Run(string(step), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b, h := sandboxtest.NewBuilder(t, sandbox.Options{
				BeforeStep: func(_ context.Context, _ string, s sandbox.Step) error {
					if s == step {
						cancel() // the caller gives up while the step runs
					}
					return nil
				},
			})
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
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{
		BeforeStep: func(_ context.Context, id string, s sandbox.Step) error {
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
		},
	})
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
	require.NoError(t, b.Destroy(ctx, se.ID))
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
	hb.b, hb.h = sandboxtest.NewBuilder(t, sandbox.Options{
		BeforeStep: func(_ context.Context, id string, s sandbox.Step) error {
			if s == sandbox.StepNetwork {
				reached <- id
				<-hb.release
			}
			return nil
		},
	})
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
	sb, err := b.Load(id)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateBuilding, sb.State, "a build in progress holds its journal's lock")
	destroyed := make(chan error, 1)
	go func() { destroyed <- b.Destroy(ctx, id) }()
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
	err := b.Destroy(cancelled, id)
	require.ErrorIs(t, err, context.Canceled)
	sb, err := b.Load(id)
	require.NoError(t, err)
	err = sb.Stop(cancelled)
	require.ErrorIs(t, err, context.Canceled)
	close(hb.release)
	require.NoError(t, <-hb.built)
	sb, err = b.Load(id)
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
	cfg.Linux = &sandbox.LinuxConfig{SecurityContext: &sandbox.SecurityContext{NamespaceOptions: &sandbox.NamespaceOptions{
		Network: sandbox.NamespaceNode, Pid: sandbox.NamespaceNode, Ipc: sandbox.NamespaceNode,
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
	assert.NotContains(t, sb.Spec.Annotations, spec.AnnotationIP)
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
	assert.ElementsMatch(t, []string{sb.BundleDir, sb.NetnsPath}, rep.Orphans, "Recover sweeps what the lost sandbox left")
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
	require.Len(t, events, len(sandbox.Steps()))
	for i, e := range events {
		assert.Equal(t, sandbox.Steps()[i], e.Step)
		assert.Equal(t, sb.ID, e.ID)
		assert.NoError(t, e.Err)
	}
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
		"localhost as default": {Seccomp: sandbox.SeccompOptions{Unset: sandbox.ProfileLocalhost}},
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
	var snapshots [][]string
	var b *sandbox.Builder
	b, _ = sandboxtest.NewBuilder(t, sandbox.Options{BeforeStep: func(_ context.Context, id string, s sandbox.Step) error {
		if id == "" {
			return nil
		}
		p := journalPath(b, id)
		if p == "" {
			snapshots = append(snapshots, nil)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var ops []string
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var r struct{ Op string }
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return err
			}
			ops = append(ops, r.Op)
		}
		snapshots = append(snapshots, ops)
		return nil
	}})
	sb, err := b.Build(context.Background(), podConfig("web"))
	require.NoError(t, err)
	want := [][]string{
		nil,                                     // before reserve
		{"begin", "release-name"},               // before dirs
		{"begin", "release-name", "remove-dir"}, // before files
		{"begin", "release-name", "remove-dir"}, // before rootfs
		{"begin", "release-name", "remove-dir", "unmount"},
		{"begin", "release-name", "remove-dir", "unmount", "unmount"},
		{"begin", "release-name", "remove-dir", "unmount", "unmount", "netns-remove"},
		// before spec: the network step moved the journal to the state
		// dir, held the name there and recorded the attachment first
		{"begin", "release-name", "remove-dir", "unmount", "unmount", "netns-remove", "release-name", "cni-del"},
		{"begin", "release-name", "remove-dir", "unmount", "unmount", "netns-remove", "release-name", "cni-del"},
		// before start: the container's removal came before its create
		{"begin", "release-name", "remove-dir", "unmount", "unmount", "netns-remove", "release-name", "cni-del", "runtime-delete"},
	}
	assert.Equal(t, want, snapshots)
	require.NoError(t, sb.Destroy(context.Background()))
}

// journalPath returns where a sandbox's journal is now ("" if nowhere): the
// state dir once it holds a network attachment, else the run dir.
func journalPath(b *sandbox.Builder, id string) string {
	o := b.Options()
	for _, p := range []string{filepath.Join(o.StateDir, "journals", id), filepath.Join(o.RunDir, "journals", id)} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func journalOf(t *testing.T, b *sandbox.Builder, id string) string {
	t.Helper()
	p := journalPath(b, id)
	require.NotEmpty(t, p, "sandbox %s has a journal", id)
	return p
}

func TestNetworkStepMovesTheJournal(t *testing.T) {
	var b *sandbox.Builder
	var before, after string
	b, _ = sandboxtest.NewBuilder(t, sandbox.Options{BeforeStep: func(_ context.Context, id string, s sandbox.Step) error {
		switch s {
		case sandbox.StepNetwork:
			before = journalPath(b, id)
		case sandbox.StepSpec:
			after = journalPath(b, id)
		}
		return nil
	}})
	sb, err := b.Build(context.Background(), podConfig("web"))
	require.NoError(t, err)
	o := b.Options()
	assert.Equal(t, filepath.Join(o.RunDir, "journals", sb.ID), before, "on the run dir until the network")
	assert.Equal(t, filepath.Join(o.StateDir, "journals", sb.ID), after, "on the state dir once attached")
	assert.NoFileExists(t, before, "moved, not copied")
	data, err := os.ReadFile(after)
	require.NoError(t, err)
	var ops []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r struct{ Op, Path string }
		require.NoError(t, json.Unmarshal([]byte(line), &r))
		ops = append(ops, r.Op)
	}
	assert.Equal(t, []string{"begin", "release-name", "remove-dir", "unmount", "unmount", "netns-remove", "release-name", "cni-del", "runtime-delete", "built"}, ops,
		"the durable name link and the attachment are written with the move, before either is made")
	names, err := os.ReadDir(filepath.Join(o.StateDir, "names"))
	require.NoError(t, err)
	assert.Len(t, names, 1, "the name is held on the state dir too")
	require.NoError(t, sb.Destroy(context.Background()))
	assert.NoFileExists(t, after)
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

// A run dir and a state dir belong to each other. A Builder of another
// state dir on the same run dir, or of the same state dir on another run
// dir, refuses every operation with ErrInvalidConfig before it changes
// anything (Recover first of all, which would sweep the other's live
// sandboxes as orphans).
func TestRunDirAndStateDirBelongToEachOther(t *testing.T) {
	a, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	sb, err := a.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	before := tree(t, a, h)

	foreignState := a.Options()
	foreignState.StateDir = filepath.Join(t.TempDir(), "other-state")
	foreignRun := a.Options()
	foreignRun.RunDir = filepath.Join(t.TempDir(), "other-run")
	for name, tc := range map[string]struct {
		opts  sandbox.Options
		field string
	}{
		"another state dir": {foreignState, "Options.RunDir"},
		"another run dir":   {foreignRun, "Options.StateDir"},
	} {
		t.Run(name, func(t *testing.T) {
			other, err := sandbox.NewBuilder(tc.opts)
			require.NoError(t, err)
			check := func(err error) {
				t.Helper()
				require.ErrorIs(t, err, sandbox.ErrInvalidConfig)
				var ce *sandbox.ConfigError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, tc.field, ce.Problems[0].Field)
			}
			_, err = other.Recover(ctx)
			check(err)
			check(other.Destroy(ctx, sb.ID))
			_, err = other.List()
			check(err)
			_, err = other.Load(sb.ID)
			check(err)
			_, err = other.Prepare()
			check(err)
			_, err = other.Build(ctx, podConfig("web2"))
			check(err)
			assert.Equal(t, before, tree(t, a, h))
		})
	}
	assert.NoDirExists(t, foreignState.StateDir, "nothing made")
	assert.NoDirExists(t, foreignRun.RunDir, "nothing made")

	// The same pair again (a restart, a second process) is welcome.
	again, err := sandbox.NewBuilder(a.Options())
	require.NoError(t, err)
	_, err = again.Recover(ctx)
	require.NoError(t, err)
	require.NoError(t, again.Destroy(ctx, sb.ID))
	assert.Empty(t, tree(t, a, h))

	// Once the old run dir is gone (a reboot empties it), the state dir
	// may move to another.
	require.NoError(t, os.RemoveAll(a.Options().RunDir))
	moved, err := sandbox.NewBuilder(foreignRun)
	require.NoError(t, err)
	_, err = moved.Prepare()
	require.NoError(t, err)
	claim, err := os.ReadFile(filepath.Join(foreignRun.StateDir, "run-dir"))
	require.NoError(t, err)
	assert.Equal(t, foreignRun.RunDir+"\n", string(claim))
}

// Builders racing to claim fresh dirs: two state dirs on one run dir, or
// one state dir with two run dirs. One pair wins; every Builder of the
// other is refused. Repeated, as the race is between processes' steps.
func TestRacingClaims(t *testing.T) {
	base, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	for _, shared := range []string{"run", "state"} {
		t.Run("shared "+shared, func(t *testing.T) {
			for range 50 {
				dir := t.TempDir()
				var wg sync.WaitGroup
				errs := make([]error, 6)
				for i := range errs {
					o := base.Options()
					o.RunDir, o.StateDir = filepath.Join(dir, "run"), filepath.Join(dir, "state")
					if shared == "run" {
						o.StateDir += fmt.Sprint(i % 2)
					} else {
						o.RunDir += fmt.Sprint(i % 2)
					}
					b, err := sandbox.NewBuilder(o)
					require.NoError(t, err)
					wg.Go(func() { _, errs[i] = b.Prepare() })
				}
				wg.Wait()
				var won [2]int
				for i, err := range errs {
					if err == nil {
						won[i%2]++
					} else {
						require.ErrorIs(t, err, sandbox.ErrInvalidConfig)
					}
				}
				require.Contains(t, [][2]int{{3, 0}, {0, 3}}, won, "one side wins whole")
			}
		})
	}
}

// One directory named two ways (a symlink, as /var/run to /run) is one
// directory: not another Builder's.
func TestClaimsSeeThroughSymlinks(t *testing.T) {
	a, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	o := a.Options()
	alias := filepath.Join(t.TempDir(), "run-alias")
	require.NoError(t, os.Symlink(o.RunDir, alias))
	o.RunDir = alias
	b, err := sandbox.NewBuilder(o)
	require.NoError(t, err)
	_, err = b.Recover(context.Background())
	require.NoError(t, err)
	_, err = b.Prepare()
	require.NoError(t, err)
}

// Recover looks at the claims afresh: a run dir emptied and taken by
// another state dir while this Builder ran is refused to it.
func TestRecoverRechecksTheClaims(t *testing.T) {
	a, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	_, err := a.Recover(ctx)
	require.NoError(t, err)
	o := a.Options()
	require.NoError(t, os.WriteFile(filepath.Join(o.RunDir, "state-dir"), []byte("/elsewhere\n"), 0o600))
	_, err = a.Recover(ctx)
	require.ErrorIs(t, err, sandbox.ErrInvalidConfig)
}

// A claim cut short by a crash (empty) claims nothing, and a crash's
// temporary claim file is swept once it is old (a young one may be a
// live writer's).
func TestTornClaimIsReplaced(t *testing.T) {
	first, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	o := first.Options()
	require.NoError(t, os.MkdirAll(o.RunDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(o.RunDir, "state-dir"), nil, 0o600))
	stale, young := filepath.Join(o.RunDir, ".state-dir.tmp-1"), filepath.Join(o.RunDir, ".state-dir.tmp-2")
	require.NoError(t, os.WriteFile(stale, []byte("/x\n"), 0o600))
	require.NoError(t, os.WriteFile(young, []byte("/y\n"), 0o600))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))
	b, err := sandbox.NewBuilder(o)
	require.NoError(t, err)
	_, err = b.Prepare()
	require.NoError(t, err)
	claim, err := os.ReadFile(filepath.Join(o.RunDir, "state-dir"))
	require.NoError(t, err)
	assert.Equal(t, o.StateDir+"\n", string(claim))
	assert.NoFileExists(t, stale)
	assert.FileExists(t, young)
	tmps, err := filepath.Glob(filepath.Join(o.RunDir, ".state-dir.tmp-*"))
	require.NoError(t, err)
	assert.Equal(t, []string{young}, tmps, "the claim's own temporary file is gone")
}

func TestReleaseNetwork(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	before := tree(t, b, h)
	ctx := context.Background()
	sb, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	require.NoError(t, sb.Stop(ctx))
	assert.Empty(t, sb.IPs)
	att, err := h.Attachments()
	require.NoError(t, err)
	assert.Empty(t, att, "the address is released")
	loaded, err := b.Load(sb.ID)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateBuilt, loaded.State, "everything else stays")
	assert.Empty(t, loaded.IPs)
	assert.FileExists(t, sb.NetnsPath)
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
	cfg.Linux = &sandbox.LinuxConfig{SecurityContext: &sandbox.SecurityContext{NamespaceOptions: &sandbox.NamespaceOptions{Network: sandbox.NamespaceNode}}}
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

func (loopbackOnly) Prepare(context.Context, *sandbox.Attachment) error {
	return fmt.Errorf("wrapped: %w", cni.ErrLoopbackOnly)
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
	require.ErrorIs(t, sb.CheckNetwork(context.Background()), sandbox.ErrNotAttached)
	require.NoError(t, sb.Destroy(context.Background()))
	assert.Equal(t, before, tree(t, b, h))
}
