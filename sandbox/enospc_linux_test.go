package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
)

// enospcPage is the unit tmpfs allocates in.
const enospcPage = 4096

// enospcVariant says which of a Builder's dirs is the tiny tmpfs: the run
// dir (the bundles) or the state dir (the journals and name links, and
// the network's cache).
type enospcVariant struct {
	name  string
	state bool // the tmpfs is the state dir (else the run dir)
	cni   bool // a CNI network (its cache in the state dir, as by default)
}

var enospcVariants = []enospcVariant{
	{name: "run-dir/loopback"},
	{name: "run-dir/cni", cni: true},
	{name: "state-dir/loopback", state: true},
	{name: "state-dir/cni", state: true, cni: true},
}

// enospcFixture is a real-host Builder one of whose dirs is a tiny tmpfs.
type enospcFixture struct {
	b    *sandbox.Builder
	opts sandbox.Options
	full string // the tmpfs
	fill string // the file that fills it
	lc   *testutil.LeakCheck
	net  *testutil.CNINetwork
}

// newENOSPCFixture makes the Builder, prepares it while the tmpfs has room
// (the state dir holds the pause rootfs), then, with free >= 0, fills the
// tmpfs so that only free bytes are free, before the leak check's snapshot:
// the fill is no leak.
func newENOSPCFixture(t *testing.T, v enospcVariant, free int64) *enospcFixture {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	opts := realOptions(t, root, sandbox.Options{})
	f := &enospcFixture{full: opts.RunDir}
	size := int64(1 << 20) // the bundles
	if v.state {
		f.full, size = opts.StateDir, 4<<20 // and catatonit, some 700 KB
	}
	f.fill = filepath.Join(f.full, testutil.FillName)
	require.NoError(t, os.MkdirAll(f.full, 0o700))
	// Registered first, so it runs last: after the leak check, which looks
	// at (and repairs) what is on the tmpfs.
	testutil.MountTmpfs(t, f.full, size)
	b, err := sandbox.NewBuilder(opts)
	require.NoError(t, err)
	_, err = b.Prepare()
	require.NoError(t, err)
	if v.cni {
		// The network's Prepare makes libcni's cache dir on the first
		// ADD, and it stays.
		require.NoError(t, os.MkdirAll(filepath.Join(opts.StateDir, "network", "results"), 0o700))
	}
	if free >= 0 {
		testutil.FillTo(t, f.full, free)
	}
	// A fill made later (see TestENOSPCDestroyOnAFullDisk) is the test's.
	f.lc = testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}, NetnsDir: opts.NetnsDir, Ignore: []string{f.fill}})
	if v.cni {
		f.net = testutil.NewCNINetwork(t, testutil.CNINetworkOptions{})
		network, err := cni.New(cni.Options{
			ConfDir: f.net.ConfDir, BinDirs: f.net.BinDirs,
			AddTimeout: 30 * time.Second, DelTimeout: 30 * time.Second,
		})
		require.NoError(t, err)
		opts.Network = network
	}
	f.opts = opts
	f.b, err = sandbox.NewBuilder(opts)
	require.NoError(t, err)
	return f
}

// build runs Build and turns a panic into a test failure (with the stack)
// and an error, so that the other cases still run.
func (f *enospcFixture) build(t *testing.T, cfg *pod.Config) (sb *sandbox.Sandbox, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Build panicked: %v\n%s", r, debug.Stack())
			sb, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	sb, err = f.b.Build(context.Background(), cfg)
	if f.net != nil {
		for _, p := range f.net.Ports() {
			f.lc.TrackLink(p)
		}
	}
	return sb, err
}

// leftovers describes what is left now ("" if nothing): the leak check's
// findings, the Builder's sandboxes, the network's address allocations.
func (f *enospcFixture) leftovers(t *testing.T) (string, []*sandbox.Sandbox) {
	t.Helper()
	msg := f.lc.Leaked()
	list, err := f.b.List()
	require.NoError(t, err)
	if len(list) > 0 {
		var ids []string
		for _, s := range list {
			ids = append(ids, fmt.Sprintf("%s (%s)", s.ID[:12], s.State))
		}
		msg += fmt.Sprintf("\n  sandboxes: %s", strings.Join(ids, ", "))
	}
	if f.net != nil {
		if ips := f.net.Allocations(); len(ips) > 0 {
			msg += fmt.Sprintf("\n  IPAM allocations: %v", ips)
		}
	}
	return msg, list
}

// repair gives the space back (removes the fill) and destroys what is
// left, so that the CNI network's own cleanup finds no attachment and the
// next case starts clean.
func (f *enospcFixture) repair(t *testing.T, list []*sandbox.Sandbox) {
	t.Helper()
	if err := os.Remove(f.fill); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Error(err)
	}
	for _, s := range list {
		// Not forever: a Build that panicked holds its journal's lock.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Destroy(ctx)
		cancel()
		if err != nil {
			t.Errorf("Destroy of %s with room again: %v", s.ID[:12], err)
		}
	}
}

// TestENOSPC builds a sandbox on a Builder whose run dir, or state dir, is
// a tiny tmpfs filled so that only N bytes are free, for N = 0, 4 KiB, …
// 64 KiB. Build either succeeds (and then Destroy does) or fails with an
// error, never a panic; after a failure nothing is left: no mount, no
// netns pin, no file under the test's dirs that was not there before, no
// sandbox in the Builder's list, no CNI address allocation.
func TestENOSPC(t *testing.T) {
	testutil.RequireRoot(t)
	for _, v := range enospcVariants {
		t.Run(v.name, func(t *testing.T) {
			for free := int64(0); free <= 64<<10; free += enospcPage {
				t.Run(fmt.Sprintf("free=%dK", free>>10), func(t *testing.T) {
					f := newENOSPCFixture(t, v, free)
					sb, err := f.build(t, podConfig("web"))
					if err == nil {
						t.Logf("free=%dK: built", free>>10)
						if err := sb.Destroy(context.Background()); err != nil {
							t.Errorf("free=%dK: Build succeeded, Destroy failed: %v", free>>10, err)
						}
					} else {
						t.Logf("free=%dK: Build failed: %v", free>>10, err)
						var se *sandbox.StepError
						if errors.As(err, &se) {
							assert.NoError(t, se.RollbackErr, "the rollback of a failed Build")
						}
					}
					if msg, list := f.leftovers(t); msg != "" {
						t.Errorf("free=%dK: left behind (Build error: %v):%s", free>>10, err, msg)
						f.repair(t, list)
					}
				})
			}
		})
	}
}

// TestENOSPCDestroyOnAFullDisk builds a sandbox while its dirs have room,
// then fills the tmpfs and destroys it: what a node under disk pressure
// does to free space. Destroy must succeed and leave nothing.
//
// Whether Destroy needs a new page depends on where the journal ends: the
// first thing Destroy does is append a "destroying" record, which needs a
// page of its own when the journal's last page is (nearly) full. The pod's
// size moves the journal's end: probe Builds measure it, then an
// annotation shifts it across the end of a page in steps of 4 bytes.
func TestENOSPCDestroyOnAFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	// The journal on the full state dir, with and without a network.
	for _, v := range []enospcVariant{enospcVariants[2], enospcVariants[3]} {
		t.Run(v.name, func(t *testing.T) {
			f := newENOSPCFixture(t, v, -1)
			ctx := context.Background()
			padded := func(pad int) *pod.Config {
				cfg := podConfig("web")
				cfg.Annotations["example.com/pad"] = strings.Repeat("p", pad)
				return cfg
			}
			// Two probes: where the journal ends, and how many bytes a byte
			// of annotation adds to it (it is in the config, and with CNI in
			// the attachment too).
			journalEnd := func(pad int) int {
				sb, err := f.build(t, padded(pad))
				require.NoError(t, err)
				size := f.journalSize(t, sb.ID)
				require.NoError(t, sb.Destroy(ctx))
				return int(size)
			}
			end0 := journalEnd(0)
			perByte := (journalEnd(256) - end0 + 128) / 256
			require.Positive(t, perByte)
			// Pads that end the journal 24 bytes short of the next page
			// boundary, then 40 bytes either side of that, in steps of 4.
			target := (end0/enospcPage+1)*enospcPage - 24
			if target-40 <= end0 {
				target += enospcPage
			}
			var pads []int
			for d := -40; d <= 40; d += 4 {
				pads = append(pads, (target+d-end0)/perByte)
			}
			var failed []string
			var first string // what the first failure left
			for _, pad := range pads {
				sb, err := f.build(t, padded(pad))
				require.NoError(t, err, "Build with room")
				size := f.journalSize(t, sb.ID)
				testutil.FillTo(t, f.full, 0)
				derr := sb.Destroy(ctx)
				msg, list := f.leftovers(t)
				if derr != nil || msg != "" {
					failed = append(failed, fmt.Sprintf("  journal of %d bytes (%d in its last page): Destroy: %v", size, size%enospcPage, derr))
					if first == "" {
						first = msg
					}
				}
				f.repair(t, list)
			}
			if len(failed) > 0 {
				t.Errorf("Destroy on a full %s left the sandbox behind for %d of %d journal sizes: "+
					"its records must fit in the room the journal reserved.\n%s\nwhat the first one left:%s",
					f.full, len(failed), len(pads), strings.Join(failed, "\n"), first)
			}
		})
	}
}

// journalSize returns the size of a sandbox's journal.
func (f *enospcFixture) journalSize(t *testing.T, id string) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(f.opts.StateDir, "journals", id))
	require.NoError(t, err)
	return st.Size()
}
