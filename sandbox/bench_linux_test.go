package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
)

// benchRoot is a temp dir for a Builder's dirs, "run" among them, on the
// disk /tmp is on (ext4 here), as this machine's /run is: a run dir need
// not be a tmpfs.
func benchRoot(b *testing.B) string {
	testutil.RequireRoot(b)
	root := b.TempDir()
	require.NoError(b, os.Mkdir(filepath.Join(root, "run"), 0o755))
	return root
}

// latencies collects per-operation durations and reports their median.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) quantile(q int) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	return l.d[len(l.d)*q/100]
}

func (l *latencies) p50() time.Duration { return l.quantile(50) }
func (l *latencies) p99() time.Duration { return l.quantile(99) }

func (l *latencies) report(b *testing.B) {
	if len(l.d) > 0 {
		b.ReportMetric(float64(l.p50().Microseconds()), "p50-µs")
		b.ReportMetric(float64(l.p99().Microseconds()), "p99-µs")
	}
}

// onGoroutines runs bench as sub-benchmarks on 1 goroutine and on 4.
func onGoroutines(b *testing.B, bench func(b *testing.B, parallel bool)) {
	b.Run("goroutines=1", func(b *testing.B) { bench(b, false) })
	b.Run("goroutines=4", func(b *testing.B) { bench(b, true) })
}

// measure runs op b.N times on one goroutine, or on 4 with parallel.
func measure(b *testing.B, parallel bool, op func(i int64) error) {
	var lat latencies
	var n atomic.Int64
	one := func() {
		i := n.Add(1)
		t0 := time.Now()
		if err := op(i); err != nil {
			b.Error(err)
		}
		lat.add(time.Since(t0))
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(max(1, 4/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one()
			}
		})
	} else {
		for b.Loop() {
			one()
		}
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkBuildDestroy measures Build+Destroy on the real host (netns,
// shm, rootfs bind, files, config.json; no CNI) next to the floor: the raw
// kernel work of the same sandbox (create and pin a netns with lo up,
// mount a tmpfs, write three small files, and undo it all). Each iteration
// does one of each, in turn, so that both see the same machine (a shared
// VM's speed drifts between runs); it reports both medians and their ratio.
func BenchmarkBuildDestroy(b *testing.B) {
	onGoroutines(b, func(b *testing.B, parallel bool) {
		root := benchRoot(b)
		run := filepath.Join(root, "run")
		pins := filepath.Join(root, "netns")
		floor := func(i int64) error {
			name := fmt.Sprintf("floor-%d", i)
			dir := filepath.Join(run, name)
			ns, err := netns.New(pins, name)
			if err != nil {
				return err
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				return err
			}
			shm := filepath.Join(dir, "shm")
			if err := os.Mkdir(shm, 0o700); err != nil {
				return err
			}
			if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=67108864"); err != nil {
				return err
			}
			for _, f := range []string{"resolv.conf", "hostname", "hosts"} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
					return err
				}
			}
			if err := unix.Unmount(shm, unix.MNT_DETACH); err != nil {
				return err
			}
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			return ns.Remove()
		}
		opts, err := realOptionsAt(root, sandbox.Options{})
		require.NoError(b, err)
		bl, err := sandbox.NewBuilder(opts)
		require.NoError(b, err)
		_, err = bl.Prepare()
		require.NoError(b, err)
		ctx := context.Background()
		builder := func(i int64) error {
			sb, err := bl.Build(ctx, podConfig(fmt.Sprintf("pod-%d", i)))
			if err != nil {
				return err
			}
			return sb.Destroy(ctx)
		}
		var fl, bd latencies
		measure(b, parallel, func(i int64) error {
			t0 := time.Now()
			if err := floor(i); err != nil {
				return err
			}
			t1 := time.Now()
			err := builder(i)
			fl.add(t1.Sub(t0))
			bd.add(time.Since(t1))
			return err
		})
		f50, b50 := fl.p50(), bd.p50()
		b.ReportMetric(float64(f50.Microseconds()), "floor-p50-µs")
		b.ReportMetric(float64(b50.Microseconds()), "builder-p50-µs")
		b.ReportMetric(float64(bd.p99().Microseconds()), "builder-p99-µs")
		b.ReportMetric(float64(b50)/float64(f50), "builder/floor")
	})
}

// timedExec runs CNI plugins with libcni's executor, adding up the time
// spent inside them.
type timedExec struct {
	invoke.Exec
	ns *atomic.Int64
}

func (e timedExec) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	t0 := time.Now()
	out, err := e.Exec.ExecPlugin(ctx, path, stdin, env)
	e.ns.Add(int64(time.Since(t0)))
	return out, err
}

// BenchmarkBuildDestroyCNI measures Build+Destroy with a bridge network
// (bridge + host-local), and how much of it is spent inside the plugins.
func BenchmarkBuildDestroyCNI(b *testing.B) {
	onGoroutines(b, func(b *testing.B, parallel bool) {
		root := benchRoot(b)
		opts, err := realOptionsAt(root, sandbox.Options{})
		require.NoError(b, err)
		n := testutil.NewCNINetwork(b, testutil.CNINetworkOptions{})
		var inPlugins atomic.Int64
		exec := timedExec{&invoke.DefaultExec{RawExec: &invoke.RawExec{}, PluginDecoder: version.PluginDecoder{}}, &inPlugins}
		network, err := cni.New(cni.Options{ConfDir: n.ConfDir, BinDirs: n.BinDirs, CacheDir: n.CacheDir, Exec: exec})
		require.NoError(b, err)
		opts.Network = network
		bl, err := sandbox.NewBuilder(opts)
		require.NoError(b, err)
		ctx := context.Background()
		t0 := time.Now()
		measure(b, parallel, func(i int64) error {
			sb, err := bl.Build(ctx, podConfig(fmt.Sprintf("pod-%d", i)))
			if err != nil {
				return err
			}
			return sb.Destroy(ctx)
		})
		// Share of the goroutines' busy time spent inside plugins.
		busy := time.Since(t0)
		if parallel {
			busy *= 4
		}
		b.ReportMetric(100*float64(inPlugins.Load())/float64(busy), "%in-plugins")
		b.ReportMetric(float64(time.Duration(inPlugins.Load()).Microseconds())/float64(b.N), "plugin-µs/op")
	})
}

// BenchmarkPauseModes measures Build+Destroy of a pod with a pause and of
// one without (Options.PauseMode PauseNever), in turn in each iteration,
// on the real host without CNI: "bundle" with no Runtime (the library's
// own work: a bundle versus two more pins), "started" with runc creating
// and starting the pause (end to end: what a no-pause pod saves).
func BenchmarkPauseModes(b *testing.B) {
	for _, started := range []bool{false, true} {
		name := "bundle"
		if started {
			name = "started"
		}
		b.Run(name, func(b *testing.B) {
			root := benchRoot(b)
			builder := func(sub string, o sandbox.Options) *sandbox.Builder {
				dir := filepath.Join(root, sub)
				require.NoError(b, os.Mkdir(dir, 0o755))
				return benchBuilder(b, dir, o)
			}
			o := sandbox.Options{}
			if started {
				require.NoError(b, testutil.BecomeSubreaper())
				o.Runtime = testutil.NewRuntime(b, "runc")
				o.CgroupParent = "/podsmith-bench-" + filepath.Base(root)
				b.Cleanup(func() { _ = testutil.RemoveCgroup(o.CgroupParent, o.CgroupParent) })
			}
			withPause := builder("pause", o)
			o.PauseMode = sandbox.PauseNever
			noPause := builder("no-pause", o)
			var p, np latencies
			measure(b, false, func(i int64) error {
				cfg := noPauseConfig(fmt.Sprintf("pod-%d", i))
				if err := buildDestroy(withPause, cfg, &p); err != nil {
					return err
				}
				return buildDestroy(noPause, cfg, &np)
			})
			b.ReportMetric(float64(p.p50().Microseconds()), "pause-p50-µs")
			b.ReportMetric(float64(np.p50().Microseconds()), "no-pause-p50-µs")
			b.ReportMetric(float64(np.p50())/float64(p.p50()), "no-pause/pause")
		})
	}
}

// BenchmarkUserNamespace measures what a user namespace adds to a Build:
// Build+Destroy of a pod in one (a helper process cloned into a new user
// namespace and netns, both pinned) and of the same pod without, in turn
// in each iteration, on the real host without CNI or runtime.
func BenchmarkUserNamespace(b *testing.B) {
	root := benchRoot(b)
	searchableFrom(b, root)
	bl := benchBuilder(b, root, sandbox.Options{})
	var plain, userns latencies
	measure(b, false, func(i int64) error {
		if err := buildDestroy(bl, podConfig(fmt.Sprintf("plain-%d", i)), &plain); err != nil {
			return err
		}
		return buildDestroy(bl, usernsPod(fmt.Sprintf("userns-%d", i)), &userns)
	})
	b.ReportMetric(float64(plain.p50().Microseconds()), "plain-p50-µs")
	b.ReportMetric(float64(userns.p50().Microseconds()), "userns-p50-µs")
	b.ReportMetric(float64((userns.p50() - plain.p50()).Microseconds()), "extra-p50-µs")
}

// benchBuilder is a prepared real-host Builder with its dirs under dir.
func benchBuilder(b *testing.B, dir string, o sandbox.Options) *sandbox.Builder {
	opts, err := realOptionsAt(dir, o)
	require.NoError(b, err)
	bl, err := sandbox.NewBuilder(opts)
	require.NoError(b, err)
	_, err = bl.Prepare()
	require.NoError(b, err)
	return bl
}

// buildDestroy builds cfg and destroys it, adding the time both took to
// lat.
func buildDestroy(bl *sandbox.Builder, cfg *pod.Config, lat *latencies) error {
	ctx := context.Background()
	t0 := time.Now()
	sb, err := bl.Build(ctx, cfg)
	if err != nil {
		return err
	}
	err = sb.Destroy(ctx)
	lat.add(time.Since(t0))
	return err
}
