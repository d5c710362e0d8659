package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// untilClosed calls fn again and again until done is closed.
func untilClosed(done <-chan struct{}, fn func()) {
	for {
		select {
		case <-done:
			return
		default:
		}
		fn()
	}
}

// hookedNetwork calls attach inside Attach: after the journal recorded the
// attachment, while the network step holds it.
type hookedNetwork struct {
	sandbox.Network
	attach func(id string, s sandbox.Step)
}

func (n hookedNetwork) Attach(ctx context.Context, a *sandbox.NetworkAttachment) ([]netip.Addr, error) {
	n.attach(a.SandboxID, sandbox.StepNetwork)
	return n.Network.Attach(ctx, a)
}

// newHookedBuilder is a fake-host Builder whose every step (and the middle
// of the network step) first calls during.
func newHookedBuilder(t *testing.T, during func(id string, s sandbox.Step)) (*sandbox.Builder, *sandboxtest.Host) {
	t.Helper()
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	var turn turns
	hooked := during
	during = func(id string, s sandbox.Step) {
		defer turn.take(id)()
		hooked(id, s)
	}
	opts := concurrentBeforeStep(sandbox.Options{
		StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"), NetnsDir: filepath.Join(dir, "netns"),
	}, func(_ context.Context, id string, s sandbox.Step) error {
		during(id, s)
		return nil
	})
	require.NoError(t, h.Apply(&opts))
	opts.Network = hookedNetwork{Network: opts.Network, attach: during}
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	return b, h
}

// Recover (another process starting up, say) and Load at every point of a
// Build see it as being built and leave it alone.
func TestRecoverAndLoadDuringEveryStep(t *testing.T) {
	ctx := context.Background()
	var b *sandbox.Builder
	var seen []string
	b, h := newHookedBuilder(t, func(id string, _ sandbox.Step) {
		rep, err := b.Recover(ctx)
		assert.NoError(t, err)
		assert.NotContains(t, rep.Destroyed, id)
		sb, err := b.Find(id)
		if errors.Is(err, sandbox.ErrNotFound) {
			seen = append(seen, "none") // before the journal exists
			assert.Empty(t, rep.Busy)
			return
		}
		if assert.NoError(t, err) {
			seen = append(seen, string(sb.State))
			assert.Equal(t, []string{id}, rep.Busy)
		}
	})
	sb, err := b.Build(ctx, podConfig("during"))
	require.NoError(t, err)
	// validate and reserve come before the journal; the network step is
	// seen twice (before it and inside Attach).
	want := []string{"none", "none"}
	for range len(stepsOf(false)) - 1 {
		want = append(want, string(sandbox.StateBuilding))
	}
	assert.Equal(t, want, seen)
	got, err := b.Find(sb.ID)
	require.NoError(t, err)
	assert.Equal(t, sandbox.StateBuilt, got.State)
	rep, err := b.Recover(ctx)
	require.NoError(t, err)
	assert.Empty(t, rep.Destroyed)
	assert.Empty(t, rep.Orphans)
	require.NoError(t, sb.Destroy(ctx))
	assert.Empty(t, tree(t, b, h))
}

// Builds with Recover and Find running against them all the time: no Build
// fails, every built sandbox stays, and a Find never misses a live one.
func TestRecoverAndLoadRaceBuilds(t *testing.T) {
	ctx := context.Background()
	var b *sandbox.Builder
	var mu sync.Mutex
	building := map[string]bool{}
	b, h := newHookedBuilder(t, func(id string, s sandbox.Step) {
		if s == sandbox.StepValidate || s == sandbox.StepReserve {
			return // no journal yet
		}
		mu.Lock()
		building[id] = true
		mu.Unlock()
	})
	done := make(chan struct{})
	var wg sync.WaitGroup
	var recovers, loads atomic.Int64
	wg.Go(func() {
		untilClosed(done, func() {
			rep, err := b.Recover(ctx)
			assert.NoError(t, err)
			assert.Empty(t, rep.Destroyed, "Recover destroyed a sandbox being built")
			assert.Empty(t, rep.Orphans, "Recover swept a part of a sandbox being built")
			recovers.Add(1)
		})
	})
	wg.Go(func() {
		untilClosed(done, func() {
			mu.Lock()
			ids := make([]string, 0, len(building))
			for id := range building {
				ids = append(ids, id)
			}
			mu.Unlock()
			for _, id := range ids {
				_, err := b.Find(id)
				assert.NotErrorIs(t, err, sandbox.ErrNotFound, "Load missed live sandbox %s", id)
				loads.Add(1)
			}
		})
	})
	var builders sync.WaitGroup
	var built sync.Map
	for g := range 3 {
		builders.Go(func() {
			for i := range 40 {
				sb, err := b.Build(ctx, podConfig(fmt.Sprintf("race-%d-%d", g, i)))
				if !assert.NoError(t, err) {
					continue
				}
				built.Store(sb.ID, sb)
			}
		})
	}
	builders.Wait()
	close(done)
	wg.Wait()
	t.Logf("%d Recovers and %d Loads ran during 120 Builds", recovers.Load(), loads.Load())

	list, err := b.List()
	require.NoError(t, err)
	assert.Len(t, list, 120)
	built.Range(func(id, v any) bool {
		got, err := b.Find(id.(string))
		if assert.NoError(t, err) {
			assert.Equal(t, sandbox.StateBuilt, got.State)
		}
		require.NoError(t, v.(*sandbox.Sandbox).Destroy(ctx))
		return true
	})
	assert.Empty(t, tree(t, b, h))
}

// gcRecorder is a NetworkCollector that checks, at every GC, that each
// sandbox attached right then is in the valid list: a GC would release the
// addresses of any that is not.
type gcRecorder struct {
	sandbox.Network
	h      *sandboxtest.Host
	t      *testing.T
	calls  atomic.Int64
	missed atomic.Int64
}

func (g *gcRecorder) GC(_ context.Context, _ string, valid []string) error {
	g.calls.Add(1)
	left, err := g.h.Left()
	assert.NoError(g.t, err)
	for _, l := range left {
		if id, ok := strings.CutPrefix(l, "attachment "); ok && !slices.Contains(valid, id) {
			g.missed.Add(1)
		}
	}
	return nil
}

func TestCollectNetworkRacesBuilds(t *testing.T) {
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	opts := sandbox.Options{StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"), NetnsDir: filepath.Join(dir, "netns")}
	require.NoError(t, h.Apply(&opts))
	gc := &gcRecorder{Network: opts.Network, h: h, t: t}
	opts.Network = gc
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	ctx := context.Background()

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		untilClosed(done, func() {
			assert.NoError(t, b.CollectNetwork(ctx))
		})
	})
	cycles(t, b, 2, 40, "gc")
	close(done)
	wg.Wait()
	t.Logf("%d GCs during 80 Build/Destroy cycles", gc.calls.Load())
	assert.NotZero(t, gc.calls.Load())
	assert.Zero(t, gc.missed.Load(), "GC ran without a live attachment in its valid list")
	assert.Empty(t, tree(t, b, h))
}

// gatedNetwork calls attach before each Attach and gc for each GC.
type gatedNetwork struct {
	sandbox.Network
	attach func(a *sandbox.NetworkAttachment)
	gc     func(valid []string)
}

func (n gatedNetwork) Attach(ctx context.Context, a *sandbox.NetworkAttachment) ([]netip.Addr, error) {
	n.attach(a)
	return n.Network.Attach(ctx, a)
}

func (n gatedNetwork) GC(_ context.Context, _ string, valid []string) error {
	n.gc(valid)
	return nil
}

// A CollectNetwork waiting for an attachment in progress holds new ones
// back, so that overlapping Builds cannot keep it out for ever: it runs
// as soon as the first is done, before the next attaches.
func TestCollectNetworkIsNotStarvedByBuilds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	require.NoError(t, err)
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	names := map[string]string{} // sandbox ID -> pod name
	firstIn, release, secondAtNetwork := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var b *sandbox.Builder
	opts := beforeStep(sandbox.Options{
		StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"), NetnsDir: filepath.Join(dir, "netns"),
	}, func(_ context.Context, id string, s sandbox.Step) error {
		if s != sandbox.StepNetwork {
			return nil
		}
		sb, err := b.Find(id)
		require.NoError(t, err)
		mu.Lock()
		names[id] = sb.Config.Metadata.Name
		mu.Unlock()
		if sb.Config.Metadata.Name == "second" {
			close(secondAtNetwork)
		}
		return nil
	})
	require.NoError(t, h.Apply(&opts))
	opts.Network = gatedNetwork{
		Network: opts.Network,
		attach: func(a *sandbox.NetworkAttachment) {
			mu.Lock()
			name := names[a.SandboxID]
			mu.Unlock()
			record("attach " + name)
			if name == "first" {
				close(firstIn)
				<-release
			}
		},
		gc: func(valid []string) {
			mu.Lock()
			var in []string
			for _, id := range valid {
				in = append(in, names[id])
			}
			mu.Unlock()
			slices.Sort(in)
			record(fmt.Sprintf("gc %v", in))
		},
	}
	b, err = sandbox.NewBuilder(opts)
	require.NoError(t, err)

	var wg sync.WaitGroup
	var first, second *sandbox.Sandbox
	wg.Go(func() {
		var err error
		first, err = b.Build(ctx, podConfig("first"))
		assert.NoError(t, err)
	})
	<-firstIn
	wg.Go(func() { assert.NoError(t, b.CollectNetwork(ctx)) })
	// Until the GC has closed the gate (a minute is only the bound of a
	// failure: the gate is closed in microseconds).
	gate, err := os.Open(filepath.Join(opts.StateDir, "network.gate"))
	require.NoError(t, err)
	defer gate.Close()
	for deadline := time.Now().Add(time.Minute); ; {
		require.True(t, time.Now().Before(deadline), "CollectNetwork never closed the gate")
		err := unix.Flock(int(gate.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if errors.Is(err, unix.EWOULDBLOCK) {
			break
		}
		require.NoError(t, err)
		require.NoError(t, unix.Flock(int(gate.Fd()), unix.LOCK_UN))
		runtime.Gosched()
	}
	wg.Go(func() {
		var err error
		second, err = b.Build(ctx, podConfig("second"))
		assert.NoError(t, err)
	})
	<-secondAtNetwork
	close(release)
	wg.Wait()
	assert.Equal(t, []string{"attach first", "gc [first second]", "attach second"}, events, "second is valid (being built) but not yet attached")
	require.NoError(t, first.Destroy(ctx))
	require.NoError(t, second.Destroy(ctx))
	assert.Empty(t, tree(t, b, h))
}
