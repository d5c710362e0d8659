package sandbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// A retry with an identical config gets the sandbox back; another config
// under the name, or a stopped sandbox, is a NameReservedError.
func TestBuildOrGet(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	sb, built, err := b.BuildOrGet(ctx, podConfig("web"))
	require.NoError(t, err)
	assert.True(t, built)

	again, built, err := b.BuildOrGet(ctx, podConfig("web"))
	require.NoError(t, err)
	assert.False(t, built)
	assert.Equal(t, sb.ID, again.ID)
	assert.Equal(t, sandbox.StateBuilt, again.State)

	other := podConfig("web")
	other.Labels = map[string]string{"changed": "yes"}
	_, _, err = b.BuildOrGet(ctx, other)
	var nr *sandbox.NameReservedError
	require.ErrorAs(t, err, &nr)
	assert.Equal(t, sb.ID, nr.ID)

	require.NoError(t, sb.Stop(ctx))
	_, _, err = b.BuildOrGet(ctx, podConfig("web"))
	require.ErrorAs(t, err, &nr)
	assert.Equal(t, sb.ID, nr.ID)

	require.NoError(t, sb.Destroy(ctx))
	left, err := h.Left()
	require.NoError(t, err)
	assert.Empty(t, left)
}

// A Build in progress is waited for, until the context is done.
func TestBuildOrGetWaitsForABuildInProgress(t *testing.T) {
	hb := holdBuild(t)
	b := hb.b
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := b.BuildOrGet(short, podConfig("web"))
	require.ErrorIs(t, err, context.DeadlineExceeded, "it waited instead of failing on the name")

	got := make(chan error, 1)
	var sb *sandbox.Sandbox
	var built bool
	go func() {
		var err error
		sb, built, err = b.BuildOrGet(context.Background(), podConfig("web"))
		got <- err
	}()
	close(hb.release)
	require.NoError(t, <-hb.built)
	require.NoError(t, <-got)
	assert.Equal(t, hb.id, sb.ID)
	assert.False(t, built)
	require.NoError(t, sb.Destroy(context.Background()))
	assert.Empty(t, tree(t, b, hb.h))
}

// A sandbox whose Build crashed holds its name until it is cleaned up:
// BuildOrGet destroys it and builds the pod anew.
func TestBuildOrGetReplacesASandboxThatNeedsCleanup(t *testing.T) {
	b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	h.CrashAt(sandbox.StepSpec)
	_, err := b.Build(ctx, podConfig("web"))
	var se *sandbox.StepError
	require.ErrorAs(t, err, &se)
	crashed, err := b.Find(se.ID)
	require.NoError(t, err)
	require.Equal(t, sandbox.StateNeedsCleanup, crashed.State)

	sb, built, err := b.BuildOrGet(ctx, podConfig("web"))
	require.NoError(t, err)
	assert.True(t, built)
	assert.NotEqual(t, se.ID, sb.ID)
	_, err = b.Find(se.ID)
	require.ErrorIs(t, err, sandbox.ErrNotFound)
	require.NoError(t, sb.Destroy(ctx))
	left, err := h.Left()
	require.NoError(t, err)
	assert.Empty(t, left)
}

// An invalid config is an error at once, as from Build.
func TestBuildOrGetInvalid(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	cfg := podConfig("web")
	cfg.Metadata.Namespace = ""
	_, _, err := b.BuildOrGet(context.Background(), cfg)
	require.True(t, errors.Is(err, sandbox.ErrInvalidConfig), err)
}
