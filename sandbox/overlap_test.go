package sandbox_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// meeting makes two calls wait for each other: each returns once both
// have arrived, or fails if the other does not come (as when the two run
// one after the other).
type meeting struct {
	n    atomic.Int32
	both chan struct{}
}

func newMeeting() *meeting { return &meeting{both: make(chan struct{})} }

func (m *meeting) arrive(who string) error {
	if m.n.Add(1) == 2 {
		close(m.both)
	}
	select {
	case <-m.both:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New(who + " ran alone: the other did not run at the same time")
	}
}

// A Build with a Runtime attaches the network while the runtime creates
// the pause: each step waits, before it acts, for the other to start.
func TestNetworkAndCreateRunAtOnce(t *testing.T) {
	m := newMeeting()
	b, h := sandboxtest.NewBuilder(t, concurrentBeforeStep(sandbox.Options{}, func(_ context.Context, id string, s sandbox.Step) error {
		if s == sandbox.StepNetwork || s == sandbox.StepCreate {
			return m.arrive(string(s))
		}
		return nil
	}))
	sb, err := b.Build(context.Background(), podConfig("web"))
	require.NoError(t, err)
	require.NoError(t, sb.Destroy(context.Background()))
	left, err := h.Left()
	require.NoError(t, err)
	assert.Empty(t, left)
}

// When one of the two steps that run at once fails, after it acted or
// before, the Build names it, the other is rolled back too, and nothing
// is left.
func TestOneOfTwoStepsAtOnceFails(t *testing.T) {
	for _, c := range []struct {
		op   string
		step sandbox.Step
	}{{"attach", sandbox.StepNetwork}, {"prepare", sandbox.StepNetwork}, {"create", sandbox.StepCreate}} {
		for _, after := range []bool{false, true} {
			t.Run(c.op, func(t *testing.T) {
				b, h := sandboxtest.NewBuilder(t, sandbox.Options{})
				injected := errors.New("injected")
				if after {
					h.FailAfter(c.op, injected)
				} else {
					h.Fail(c.op, injected)
				}
				_, err := b.Build(context.Background(), podConfig("web"))
				var se *sandbox.StepError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, c.step, se.Step)
				require.ErrorIs(t, err, injected)
				assert.NoError(t, se.RollbackErr)
				left, err := h.Left()
				require.NoError(t, err)
				assert.Empty(t, left)
				list, err := b.List()
				require.NoError(t, err)
				assert.Empty(t, list)
			})
		}
	}
}

// overlapNetwork and overlapRuntime meet in Detach and Delete: a Stop or
// Destroy must run the two at once, once the pause is dead.
type overlapNetwork struct {
	sandbox.Network
	m func() *meeting
}

func (n overlapNetwork) Detach(ctx context.Context, a *sandbox.NetworkAttachment) error {
	if err := n.m().arrive("detach"); err != nil {
		return err
	}
	return n.Network.Detach(ctx, a)
}

type overlapRuntime struct {
	sandbox.Runtime
	m      func() *meeting
	killed *atomic.Bool
}

func (r overlapRuntime) Wait(ctx context.Context, id string) error {
	err := r.Runtime.Wait(ctx, id)
	r.killed.Store(err == nil)
	return err
}

func (r overlapRuntime) Delete(ctx context.Context, id string) error {
	if !r.killed.Load() {
		return errors.New("delete before the pause was reaped")
	}
	if err := r.m().arrive("delete"); err != nil {
		return err
	}
	return r.Runtime.Delete(ctx, id)
}

// Stop and Destroy kill and reap the pause, then delete it while the
// network detaches.
func TestStopAndDestroyDetachWhileTheyDelete(t *testing.T) {
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	opts := sandbox.Options{StateDir: dir + "/state", RunDir: dir + "/run", NetnsDir: dir + "/netns"}
	require.NoError(t, h.Apply(&opts))
	var cur atomic.Pointer[meeting]
	m := func() *meeting { return cur.Load() }
	opts.Network = overlapNetwork{opts.Network, m}
	opts.Runtime = overlapRuntime{opts.Runtime, m, new(atomic.Bool)}
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	ctx := context.Background()

	for _, remove := range []func(*sandbox.Sandbox) error{
		func(sb *sandbox.Sandbox) error { return sb.Stop(ctx) },
		func(sb *sandbox.Sandbox) error { return sb.Destroy(ctx) },
	} {
		sb, err := b.Build(ctx, podConfig("web"))
		require.NoError(t, err)
		cur.Store(newMeeting())
		require.NoError(t, remove(sb))
		require.NoError(t, sb.Destroy(ctx))
	}
	left, err := h.Left()
	require.NoError(t, err)
	assert.Empty(t, left)
}
