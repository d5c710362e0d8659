package sandboxtest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

func config(name string) *pod.Config {
	return &pod.Config{Metadata: pod.Metadata{Name: name, Namespace: "ns", UID: "u-" + name}}
}

func TestHostRecordsAndFails(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	sb, err := b.Build(ctx, config("a"))
	require.NoError(t, err)
	ops := h.Ops()
	require.Len(t, ops, 7)
	assert.Equal(t, []sandboxtest.Op{
		{Kind: "bind", Path: sb.Files.Rootfs},
		{Kind: "mount-shm", Path: sb.Files.Shm},
		{Kind: "netns-create", Path: sb.NetnsPath},
	}, ops[:3])
	// The network attaches while the runtime creates the pause.
	attach := slices.DeleteFunc(slices.Clone(ops[3:6]), func(op sandboxtest.Op) bool { return op.Kind == "create" })
	assert.Equal(t, []sandboxtest.Op{{Kind: "prepare", Path: sb.ID}, {Kind: "attach", Path: sb.ID}}, attach)
	assert.Contains(t, ops[3:6], sandboxtest.Op{Kind: "create", Path: sb.ID})
	assert.Equal(t, sandboxtest.Op{Kind: "start", Path: sb.ID}, ops[6])
	assert.FileExists(t, sb.NetnsPath, "a fake pin is a file")
	assert.DirExists(t, sb.Files.Shm, "a fake mount is a directory")
	left, err := h.Left()
	require.NoError(t, err)
	assert.Equal(t, []string{"attachment " + sb.ID, "container " + sb.ID, "mount " + sb.Files.Rootfs, "mount " + sb.Files.Shm, "netns " + sb.NetnsPath}, left)

	// A second pod gets the next address.
	sb2, err := b.Build(ctx, config("b"))
	require.NoError(t, err)
	assert.NotEqual(t, sb.IPs, sb2.IPs)

	injected := errors.New("boom")
	h.FailAt(sandbox.StepShm, injected)
	_, err = b.Build(ctx, config("c"))
	require.ErrorIs(t, err, injected)
	h.FailAt(sandbox.StepShm, nil)

	require.NoError(t, sb.Destroy(ctx))
	require.NoError(t, sb2.Destroy(ctx))
	left, err = h.Left()
	require.NoError(t, err)
	assert.Empty(t, left)
	assert.NoFileExists(t, sb.NetnsPath)
}

// Fail and FailAfter: an operation that fails before or after it acted; a
// failed undo leaves the sandbox needing cleanup, with what it holds.
func TestFailAnOperation(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	injected := errors.New("injected")

	h.FailAfter("netns-create", injected)
	_, err := b.Build(ctx, config("a"))
	var se *sandbox.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, sandbox.StepNetns, se.Step)
	assert.NoError(t, se.RollbackErr)
	ops := h.Ops()
	assert.Equal(t, "netns-remove", ops[len(ops)-3].Kind, "the pin made before the failure is removed")
	h.FailAfter("netns-create", nil)

	// A rollback whose undo fails.
	h.FailAt(sandbox.StepStart, injected)
	h.Fail("detach", injected)
	_, err = b.Build(ctx, config("a"))
	require.ErrorAs(t, err, &se)
	var ue *sandbox.UndoError
	require.ErrorAs(t, se.RollbackErr, &ue)
	assert.Equal(t, "net-detach", ue.Op)
	assert.Equal(t, se.ID, ue.Path)
	sb, err := b.Find(se.ID)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateNeedsCleanup, sb.State)
	left, err := h.Left()
	require.NoError(t, err)
	assert.Equal(t, []string{"attachment " + se.ID}, left, "only what the failed undo kept")
	h.Fail("detach", nil)
	h.FailAt(sandbox.StepStart, nil)
	require.NoError(t, sb.Destroy(ctx))
	left, err = h.Left()
	require.NoError(t, err)
	assert.Empty(t, left)
}

// CrashAt leaves a Build as its process's death would; Recover ends it.
func TestCrashAtAStepThenRecover(t *testing.T) {
	for _, step := range sandbox.Steps()[2:] {
		if step == sandbox.StepNamespaces {
			continue // a pod with a pause has no such step
		}
		t.Run(string(step), func(t *testing.T) {
			b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
			ctx := context.Background()
			h.CrashAt(step)
			_, err := b.Build(ctx, config("a"))
			require.Error(t, err)
			list, err := b.List()
			require.NoError(t, err)
			require.Len(t, list, 1)
			assert.Equal(t, sandbox.StateNeedsCleanup, list[0].State, "no rollback ran")
			rep, err := b.Recover(ctx)
			require.NoError(t, err)
			assert.Equal(t, []string{list[0].ID}, rep.Destroyed)
			left, err := h.Left()
			require.NoError(t, err)
			assert.Empty(t, left)
			sb, err := b.Build(ctx, config("a"))
			require.NoError(t, err, "the name is free")
			require.NoError(t, sb.Destroy(ctx))
		})
	}
}

func TestFakeRefusals(t *testing.T) {
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	opts := sandbox.Options{StateDir: dir + "/s", RunDir: dir + "/r", NetnsDir: dir + "/n"}
	require.NoError(t, h.Apply(&opts))

	// Check on a sandbox that is not attached.
	err = opts.Network.Check(context.Background(), &sandbox.NetworkAttachment{SandboxID: "x"})
	require.ErrorIs(t, err, sandboxtest.ErrFake)
	// A pin that exists already.
	require.NoError(t, os.MkdirAll(dir+"/n", 0o755))
	_, err = opts.Host.CreateNetNS(dir+"/n", "p", sandbox.NetNSOptions{})
	require.NoError(t, err)
	_, err = opts.Host.CreateNetNS(dir+"/n", "p", sandbox.NetNSOptions{})
	require.ErrorIs(t, err, sandboxtest.ErrFake)
	// A shm of no size.
	require.ErrorIs(t, opts.Host.MountShm(dir+"/shm", 0, "", nil), sandboxtest.ErrFake)
	// Undoing what is not there is fine, as on a real host.
	require.NoError(t, opts.Host.Unmount(dir+"/none"))
	require.NoError(t, opts.Host.RemoveNetNS(dir+"/n/none"))
	require.NoError(t, opts.Network.Detach(context.Background(), &sandbox.NetworkAttachment{SandboxID: "none"}))
	require.NoError(t, opts.Runtime.Delete(context.Background(), "none"))
	// A cancelled context stops an attach.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = opts.Network.Attach(ctx, &sandbox.NetworkAttachment{SandboxID: "y"})
	require.ErrorIs(t, err, context.Canceled)
}
