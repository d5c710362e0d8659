package sandbox_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// A pod that names a runtime handler gets that runtime, for its whole
// life: also a Builder made later (after a restart) stops and removes its
// pause with it.
func TestRuntimeHandlers(t *testing.T) {
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	alt, err := sandboxtest.NewHost(filepath.Join(dir, "alt"))
	require.NoError(t, err)
	var altOpts sandbox.Options
	require.NoError(t, alt.Apply(&altOpts))
	opts := sandbox.Options{StateDir: dir + "/state", RunDir: dir + "/run", NetnsDir: dir + "/netns",
		RuntimeHandlers: map[string]sandbox.Runtime{"alt": altOpts.Runtime}}
	require.NoError(t, h.Apply(&opts))
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	ctx := context.Background()

	cfg := podConfig("web")
	cfg.RuntimeHandler = "alt"
	sb, err := b.Build(ctx, cfg)
	require.NoError(t, err)
	kinds := func(h *sandboxtest.Host) []string {
		var k []string
		for _, op := range h.Ops() {
			if op.Kind == "create" || op.Kind == "start" || op.Kind == "kill" || op.Kind == "delete" {
				k = append(k, op.Kind)
			}
		}
		return k
	}
	assert.Equal(t, []string{"create", "start"}, kinds(alt))
	assert.Empty(t, kinds(h), "the default runtime made nothing")
	st, err := sb.PauseState(ctx)
	require.NoError(t, err)
	assert.Equal(t, specs.StateRunning, st.Status)

	later, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	found, err := later.Find(sb.ID)
	require.NoError(t, err)
	assert.Equal(t, "alt", found.Config.RuntimeHandler)
	require.NoError(t, found.Destroy(ctx))
	assert.Equal(t, []string{"create", "start", "kill", "delete"}, kinds(alt))
	assert.Empty(t, kinds(h))
	for _, host := range []*sandboxtest.Host{h, alt} {
		left, err := host.Left()
		require.NoError(t, err)
		assert.Empty(t, left)
	}

	// An unknown handler is a problem of the config.
	cfg.RuntimeHandler = "nope"
	_, err = b.Build(ctx, cfg)
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 1)
	assert.Equal(t, "runtime_handler", ce.Problems[0].Field)

	// A journal whose handler the Builder lacks keeps its pause for a
	// Builder that has it.
	cfg.RuntimeHandler = "alt"
	sb, err = b.Build(ctx, cfg)
	require.NoError(t, err)
	without := opts
	without.RuntimeHandlers = nil
	nb, err := sandbox.NewBuilder(without)
	require.NoError(t, err)
	found, err = nb.Find(sb.ID)
	require.NoError(t, err)
	err = found.Destroy(ctx)
	var ue *sandbox.UndoError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, "runtime-delete", ue.Op)
	require.NoError(t, sb.Destroy(ctx))

	_, err = sandbox.NewBuilder(sandbox.Options{RuntimeHandlers: map[string]sandbox.Runtime{"": altOpts.Runtime, "x": nil}})
	require.True(t, errors.As(err, &ce))
	assert.Len(t, ce.Problems, 2)
}

// runRuntime has Run: the create step runs the pause, the start step does
// nothing.
type runRuntime struct {
	sandbox.Runtime
	runs, starts *atomic.Int32
}

func (r runRuntime) Run(ctx context.Context, id, bundle string) (int, error) {
	r.runs.Add(1)
	pid, err := r.Runtime.Create(ctx, id, bundle)
	if err != nil {
		return pid, err
	}
	return pid, r.Runtime.Start(ctx, id)
}

func (r runRuntime) Start(ctx context.Context, id string) error {
	r.starts.Add(1)
	return r.Runtime.Start(ctx, id)
}

func TestARuntimeThatRuns(t *testing.T) {
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	opts := sandbox.Options{StateDir: dir + "/state", RunDir: dir + "/run", NetnsDir: dir + "/netns"}
	require.NoError(t, h.Apply(&opts))
	rr := runRuntime{opts.Runtime, new(atomic.Int32), new(atomic.Int32)}
	opts.Runtime = rr
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	ctx := context.Background()
	sb, err := b.Build(ctx, podConfig("web"))
	require.NoError(t, err)
	assert.Equal(t, int32(1), rr.runs.Load())
	assert.Zero(t, rr.starts.Load(), "Run started it")
	st, err := sb.PauseState(ctx)
	require.NoError(t, err)
	assert.Equal(t, specs.StateRunning, st.Status)
	require.NoError(t, sb.Destroy(ctx))
	left, err := h.Left()
	require.NoError(t, err)
	assert.Empty(t, left)
}
