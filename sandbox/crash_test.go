package sandbox_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// Crash tests run a Build in a child process (this test binary, re-run in
// crash mode by TestMain) that SIGKILLs itself at a chosen point, then
// Recover in this process, and check that nothing is left.
const (
	envCrashDir  = "PODSMITH_TEST_CRASH_DIR"
	envCrashAt   = "PODSMITH_TEST_CRASH_AT"
	envCrashReal = "PODSMITH_TEST_CRASH_REAL" // "1": the real host, not the fakes
	envCrashCNI  = "PODSMITH_TEST_CRASH_CNI"  // the real host's CNI network: confdir;bindirs;cachedir
	// The real host's runtime (runc or crun), its state and wrapper
	// under <crash dir>/runtime.
	envCrashRuntime = "PODSMITH_TEST_CRASH_RUNTIME"
	// The buildMode's name: pause, no-pause or userns.
	envCrashMode = "PODSMITH_TEST_CRASH_MODE"
)

// realNetwork plugs the crash child's CNI network in (on Linux: see
// crashCNIOptions), realRuntime its runtime (see crashRuntime).
var (
	realNetwork = func(*sandbox.Options) error { return nil }
	realRuntime = func(string, *sandbox.Options) error { return nil }
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashDir); dir != "" {
		crashChild(dir, os.Getenv(envCrashAt))
		return
	}
	os.Exit(m.Run())
}

// crashPoints are where the child dies: before a step starts
// ("step:<step>"), as a host operation begins ("op:<kind>") or right after
// it succeeded ("done:<kind>"), after the Build returned ("built"), or in
// the Destroy that follows, as an undo begins or right after it succeeded
// ("op:<undo>", "done:<undo>").
// A Build without a pause has no rootfs, spec, create or start, and pins
// its IPC and UTS namespaces.
func crashPoints(m buildMode) []string {
	var pts []string
	for _, s := range stepsOf(m.noPause) {
		pts = append(pts, "step:"+string(s))
	}
	ops := []string{"bind", "mount-shm", "netns-create", "attach", "create", "start", "netns-remove", "unmount", "detach", "kill", "delete"}
	switch {
	case m.noPause:
		ops = []string{"mount-shm", "netns-create", "pin", "attach", "netns-remove", "unpin", "unmount", "detach"}
	case m.userns:
		ops = append(ops, "unpin") // the user namespace's pin (made with the netns)
	}
	for _, op := range ops {
		pts = append(pts, "op:"+op, "done:"+op)
	}
	return append(pts, "built")
}

// stepsOf returns the steps a Build of podConfig runs, with a pause or
// (noPauseConfig, Options.PauseMode PauseNever) without one, in order.
func stepsOf(noPause bool) []sandbox.Step {
	return slices.DeleteFunc(sandbox.Steps(), func(s sandbox.Step) bool {
		switch s {
		case sandbox.StepRootfs, sandbox.StepSpec, sandbox.StepCreate, sandbox.StepStart:
			return noPause
		case sandbox.StepNamespaces:
			return !noPause
		}
		return false
	})
}

// buildMode is a kind of Build the crash and fault tests cover: with a
// pause, without one, in a user namespace.
type buildMode struct {
	name            string
	noPause, userns bool
}

// crashModes are the Builds a crash test kills.
var crashModes = []buildMode{{name: "pause"}, {name: "no-pause", noPause: true}, {name: "userns", userns: true}}

// env is the crash child's environment for the mode.
func (m buildMode) env() string { return envCrashMode + "=" + m.name }

// apply sets the mode's Options; config is its podConfig.
func (m buildMode) apply(o *sandbox.Options) {
	if m.noPause {
		o.PauseMode = sandbox.PauseNever
	}
}

func (m buildMode) config(name string) *pod.Config {
	switch {
	case m.noPause:
		return noPauseConfig(name)
	case m.userns:
		return usernsPod(name)
	}
	return podConfig(name)
}

// usernsPod is a pod in a user namespace of its own: container IDs 0-65535
// are host IDs from usernsHostID.
func usernsPod(name string) *pod.Config {
	cfg := podConfig(name)
	m := []pod.IDMapping{{HostID: usernsHostID, ContainerID: 0, Length: 65536}}
	cfg.Linux.SecurityContext = &pod.SecurityContext{NamespaceOptions: &pod.NamespaceOptions{
		UsernsOptions: &pod.UserNamespace{Mode: pod.NamespacePod, Uids: m, Gids: m},
	}}
	return cfg
}

// searchableFrom makes dir and its parents up to the temp dir searchable
// by others (t.TempDir's dirs are 0700): a pod's user namespace root, an
// unprivileged user of the node, must reach its bundle.
func searchableFrom(t testing.TB, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != filepath.Dir(d); d = filepath.Dir(d) {
		st, err := os.Stat(d)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(d, st.Mode().Perm()|0o011))
	}
}

// usernsHostID is where the test pods' IDs start on the node: far above
// any real user's.
const usernsHostID = 1 << 30

// noPauseConfig is podConfig for a Builder without pauses: its containers
// have PID namespaces of their own.
func noPauseConfig(name string) *pod.Config {
	cfg := podConfig(name)
	cfg.Linux.SecurityContext = &pod.SecurityContext{NamespaceOptions: &pod.NamespaceOptions{Pid: pod.NamespaceContainer}}
	return cfg
}

// inDestroy reports whether a crash point is in the Destroy.
func inDestroy(at string) bool {
	for _, op := range []string{"netns-remove", "unpin", "unmount", "detach", "kill", "delete"} {
		if at == "op:"+op || at == "done:"+op {
			return true
		}
	}
	return false
}

func die() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL); select {} }

// Host seams that die around one operation.
type (
	dyingHost struct {
		sandbox.Host
		at string
	}
	dyingNetwork struct {
		sandbox.Network
		at string
	}
	dyingRuntime struct {
		sandbox.Runtime
		at string
	}
)

func around(at, kind string, fn func() error) error {
	if at == "op:"+kind {
		die()
	}
	err := fn()
	if at == "done:"+kind && err == nil {
		die()
	}
	return err
}

func (d dyingHost) CreateNetNS(dir, name string, opts sandbox.NetNSOptions) (p string, err error) {
	err = around(d.at, "netns-create", func() error { p, err = d.Host.CreateNetNS(dir, name, opts); return err })
	return p, err
}

func (d dyingHost) MountShm(path string, size int64, label string, owner *sandbox.Owner) error {
	return around(d.at, "mount-shm", func() error { return d.Host.MountShm(path, size, label, owner) })
}

func (d dyingHost) BindReadOnly(src, dst string) error {
	return around(d.at, "bind", func() error { return d.Host.BindReadOnly(src, dst) })
}

func (d dyingHost) RemoveNetNS(path string) error {
	return around(d.at, "netns-remove", func() error { return d.Host.RemoveNetNS(path) })
}

func (d dyingHost) PinNamespace(path string, ns sandbox.Namespace) error {
	return around(d.at, "pin", func() error { return d.Host.PinNamespace(path, ns) })
}

func (d dyingHost) Unpin(path string) error {
	return around(d.at, "unpin", func() error { return d.Host.Unpin(path) })
}

func (d dyingHost) Unmount(path string) error {
	return around(d.at, "unmount", func() error { return d.Host.Unmount(path) })
}

func (d dyingNetwork) Detach(ctx context.Context, a *sandbox.NetworkAttachment) error {
	return around(d.at, "detach", func() error { return d.Network.Detach(ctx, a) })
}

func (d dyingNetwork) Attach(ctx context.Context, a *sandbox.NetworkAttachment) (ips []netip.Addr, err error) {
	err = around(d.at, "attach", func() error { ips, err = d.Network.Attach(ctx, a); return err })
	return ips, err
}

func (d dyingRuntime) Create(ctx context.Context, id, bundle string) (pid int, err error) {
	err = around(d.at, "create", func() error { pid, err = d.Runtime.Create(ctx, id, bundle); return err })
	return pid, err
}

func (d dyingRuntime) Start(ctx context.Context, id string) error {
	return around(d.at, "start", func() error { return d.Runtime.Start(ctx, id) })
}

func (d dyingRuntime) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	return around(d.at, "kill", func() error { return d.Runtime.Kill(ctx, id, sig) })
}

func (d dyingRuntime) Delete(ctx context.Context, id string) error {
	return around(d.at, "delete", func() error { return d.Runtime.Delete(ctx, id) })
}

func crashOptions(dir string) (sandbox.Options, *sandboxtest.Host, error) {
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	if err != nil {
		return sandbox.Options{}, nil, err
	}
	o := sandbox.Options{StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"), NetnsDir: filepath.Join(dir, "netns")}
	return o, h, h.Apply(&o)
}

func crashChild(dir, at string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var o sandbox.Options
	var err error
	if os.Getenv(envCrashReal) == "1" {
		if o, err = realOptionsAt(dir, sandbox.Options{}); err != nil {
			fail(err)
		}
		o.Host = sandbox.RealHost()
		if err := realNetwork(&o); err != nil {
			fail(err)
		}
		if err := realRuntime(dir, &o); err != nil {
			fail(err)
		}
	} else if o, _, err = crashOptions(dir); err != nil {
		fail(err)
	}
	if o.Network != nil {
		o.Network = dyingNetwork{o.Network, at}
	}
	if o.Runtime != nil {
		o.Runtime = dyingRuntime{o.Runtime, at}
	}
	o.Host = dyingHost{o.Host, at}
	var mode buildMode
	for _, m := range crashModes {
		if m.name == os.Getenv(envCrashMode) {
			mode = m
		}
	}
	mode.apply(&o)
	cfg := mode.config("crash")
	o = beforeStep(o, func(_ context.Context, _ string, s sandbox.Step) error {
		if at == "step:"+string(s) {
			die()
		}
		return nil
	})
	b, err := sandbox.NewBuilder(o)
	if err != nil {
		fail(err)
	}
	sb, err := b.Build(context.Background(), cfg)
	if err != nil {
		fail(err)
	}
	if at == "built" {
		die()
	}
	if inDestroy(at) {
		if err := sb.Destroy(context.Background()); err != nil {
			fail(err)
		}
	}
	os.Exit(3) // the crash point was never reached
}

// runToCrash runs the crash child on dir (its environment plus env) and
// requires that it died at the crash point at.
func runToCrash(t *testing.T, dir, at string, env ...string) {
	t.Helper()
	out, err := crashCommand(dir, at, env...).CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	ws := ee.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child died at %s: %v %s", at, err, out)
}

// crashCommand is the crash child that dies at at.
func crashCommand(dir, at string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envCrashDir+"="+dir, envCrashAt+"="+at), env...)
	return cmd
}

func TestRecoverAfterCrash(t *testing.T) {
	for _, mode := range crashModes {
		for _, at := range crashPoints(mode) {
			t.Run(mode.name+"/"+at, func(t *testing.T) { recoverAfterCrash(t, at, mode.env()) })
		}
	}
}

func recoverAfterCrash(t *testing.T, at, env string) {
	dir := t.TempDir()
	searchableFrom(t, dir)
	o, h, err := crashOptions(dir)
	require.NoError(t, err)
	b, err := sandbox.NewBuilder(o)
	require.NoError(t, err)
	before := tree(t, b, h)

	runToCrash(t, dir, at, env)

	ctx := context.Background()
	list, err := b.List()
	require.NoError(t, err)
	wantState := sandbox.StateNeedsCleanup
	if at == "built" {
		wantState = sandbox.StateBuilt
	}
	if at != "step:validate" && at != "step:reserve" {
		require.Len(t, list, 1, "the journal outlives the crash")
	}
	for _, sb := range list {
		assert.Equal(t, wantState, sb.State)
	}

	rep, err := b.Recover(ctx)
	require.NoError(t, err)
	if at == "built" {
		// A built sandbox is the caller's to destroy.
		assert.Empty(t, rep.Destroyed)
		require.Len(t, list, 1)
		require.NoError(t, list[0].Destroy(ctx))
	} else if strings.HasPrefix(at, "step:") && at != "step:validate" && at != "step:reserve" || !strings.HasPrefix(at, "step:") {
		assert.Len(t, rep.Destroyed, 1)
	}
	assert.Empty(t, rep.Orphans, "the journal knew of everything")
	assert.Equal(t, before, tree(t, b, h), "nothing left after a crash at %s", at)

	again, err := b.Recover(ctx)
	require.NoError(t, err)
	assert.Empty(t, again.Destroyed, "Recover is idempotent")
	sb, err := b.Build(ctx, podConfig("crash"))
	require.NoError(t, err, "the name is free")
	require.NoError(t, sb.Destroy(ctx))
}
