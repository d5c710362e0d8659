package sandboxtest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

func config(name string) *sandbox.Config {
	return &sandbox.Config{Metadata: sandbox.Metadata{Name: name, Namespace: "ns", UID: "u-" + name}}
}

func TestHostRecordsAndFails(t *testing.T) {
	var called []sandbox.Step
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{BeforeStep: func(_ context.Context, _ string, s sandbox.Step) error {
		called = append(called, s)
		return nil
	}})
	ctx := context.Background()
	sb, err := b.Build(ctx, config("a"))
	require.NoError(t, err)
	assert.Equal(t, sandbox.Steps(), called, "the caller's own BeforeStep still runs")
	assert.Equal(t, []sandboxtest.Op{
		{Kind: "bind", Path: sb.Files.Rootfs},
		{Kind: "mount-shm", Path: sb.Files.Shm},
		{Kind: "netns-create", Path: sb.NetnsPath},
		{Kind: "prepare", Path: sb.ID},
		{Kind: "attach", Path: sb.ID},
		{Kind: "create", Path: sb.ID},
		{Kind: "start", Path: sb.ID},
	}, h.Ops())
	assert.FileExists(t, sb.NetnsPath, "a fake pin is a file")
	assert.DirExists(t, sb.Files.Shm, "a fake mount is a directory")
	att, err := h.Attachments()
	require.NoError(t, err)
	assert.Equal(t, []string{sb.ID}, att)

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
	att, err = h.Attachments()
	require.NoError(t, err)
	assert.Empty(t, att)
	assert.NoFileExists(t, sb.NetnsPath)
	containers, err := h.Containers()
	require.NoError(t, err)
	assert.Empty(t, containers)
}

func TestFakeRefusals(t *testing.T) {
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	opts := sandbox.Options{StateDir: dir + "/s", RunDir: dir + "/r", NetnsDir: dir + "/n"}
	require.NoError(t, h.Apply(&opts))

	// Check on a sandbox that is not attached.
	err = opts.Network.Check(context.Background(), &sandbox.Attachment{SandboxID: "x"})
	require.ErrorIs(t, err, sandboxtest.ErrFake)
	// A pin that exists already.
	require.NoError(t, os.MkdirAll(dir+"/n", 0o755))
	_, err = opts.NetNS.Create(dir+"/n", "p")
	require.NoError(t, err)
	_, err = opts.NetNS.Create(dir+"/n", "p")
	require.ErrorIs(t, err, sandboxtest.ErrFake)
	// A shm of no size.
	require.ErrorIs(t, opts.Mounter.MountShm(dir+"/shm", 0, ""), sandboxtest.ErrFake)
	// Unmounting what is not there is fine, as on a real host.
	require.NoError(t, opts.Mounter.Unmount(dir+"/none"))
	require.NoError(t, opts.NetNS.Remove(dir+"/n/none"))
	require.NoError(t, opts.Network.Detach(context.Background(), &sandbox.Attachment{SandboxID: "none"}))
	// A cancelled context stops an attach.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = opts.Network.Attach(ctx, &sandbox.Attachment{SandboxID: "y"})
	require.ErrorIs(t, err, context.Canceled)
}
