// Package sandboxtest fakes the host for code that embeds podsmith's
// sandbox Builder, so that it can be unit-tested as a normal user, in a
// temp dir, on any OS.
//
// A Host stands in for the Builder's three seams: the host (network
// namespaces, mounts, the pause rootfs, cgroups), the network and the
// runtime. Everything else a Builder does (its journal, name reservations,
// bundle, resolv.conf, hostname, hosts and config.json) happens for real
// in the temp dir, so a test sees the same files a node would. The fakes
// keep their state on disk: a fake netns pin is an empty file, a fake
// mount an empty directory, a fake attachment a file holding its address,
// a fake pause container a file holding its runtime state, and Left lists
// what is live, even across processes (a test can kill a building process
// and Recover in another).
//
// What an embedder's tests need most, a Host provides:
//   - Ops: every operation done, in order.
//   - Left: what the fake host still holds; after a Destroy, nothing.
//   - FailAt: fail a step of the next Builds, before it acts.
//   - Fail and FailAfter: fail an operation (netns-create, unmount,
//     attach, detach, create, delete...) before or after it acted, to see
//     a rollback undo what a failed step did, or an undo fail (the
//     Build's StepError.RollbackErr, a Destroy's error, a sandbox in
//     StateNeedsCleanup).
//   - CrashAt: the next Build stops at a step as if its process died,
//     leaving its journal for Recover.
package sandboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/internal/testhook"
	"github.com/podsmith/podsmith/spec"
)

// Op is one operation the fake host did.
type Op struct {
	// Kind is one of netns-create, netns-remove, pin, unpin, mount-shm, bind,
	// unmount, cgroup-remove, prepare, attach, detach, check, create,
	// start, kill, delete.
	Kind string
	// Path is the pin, mount point or cgroup; for the network and runtime
	// operations, the sandbox ID.
	Path string
}

// Host is the fake host. Its zero value is not usable; call NewHost.
type Host struct {
	dir string

	mu      sync.Mutex
	ops     []Op
	steps   map[sandbox.Step]error
	fail    map[string]failure
	crashAt sandbox.Step
}

type failure struct {
	err   error
	after bool // the operation acts, then fails
}

// NewHost returns a fake host keeping its state under dir.
func NewHost(dir string) (*Host, error) {
	for _, d := range []string{"attachments", "containers", "live"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &Host{dir: dir, steps: map[sandbox.Step]error{}, fail: map[string]failure{}}, nil
}

// NewBuilder returns a prepared Builder (see Builder.Prepare) on a fake
// host, with every directory under t.TempDir() unless opts sets it. opts is
// otherwise used as given.
func NewBuilder(t testing.TB, opts sandbox.Options) (*sandbox.Builder, *Host) {
	t.Helper()
	dir := t.TempDir()
	// Searchable by others, as a node's run dir must be for pods in a
	// user namespace (the Builder checks it before it makes their bundle).
	for d := dir; d != os.TempDir() && d != filepath.Dir(d); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	h, err := NewHost(filepath.Join(dir, "host"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(dir, "state")
	}
	if opts.RunDir == "" {
		opts.RunDir = filepath.Join(dir, "run")
	}
	if opts.NetnsDir == "" {
		opts.NetnsDir = filepath.Join(dir, "netns")
	}
	if err := h.Apply(&opts); err != nil {
		t.Fatal(err)
	}
	b, err := sandbox.NewBuilder(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Prepare(); err != nil {
		t.Fatal(err)
	}
	return b, h
}

// Apply plugs the fakes into opts: Host, Network and Runtime (set Network
// or Runtime to nil afterwards for a Builder without one), the hooks of
// FailAt and CrashAt, and, unless set, a HostResolvConf with a nameserver
// from a documentation range (the machine's own may only list a loopback
// stub, which a pod cannot use).
func (h *Host) Apply(o *sandbox.Options) error {
	o.Host, o.Network, o.Runtime = hostFake{h}, networkFake{h}, runtimeFake{h}
	testhook.SetBeforeStep(o, func(_ context.Context, id, step string) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		s := sandbox.Step(step)
		if id != "" && s == h.crashAt {
			h.crashAt = ""
			return testhook.ErrCrash
		}
		return h.steps[s]
	})
	if o.HostResolvConf == "" {
		p := filepath.Join(h.dir, "resolv.conf")
		if err := os.WriteFile(p, []byte("nameserver 192.0.2.53\nsearch example.test\n"), 0o644); err != nil {
			return err
		}
		o.HostResolvConf = p
	}
	return nil
}

// FailAt makes every following Build fail at step with err, before the
// step acts; a nil err clears it.
func (h *Host) FailAt(step sandbox.Step, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.steps, step)
	} else {
		h.steps[step] = err
	}
}

// Fail makes every following operation of kind (see Op) fail with err
// before it acts; a nil err clears it. Failing an undo's operation
// (unmount, netns-remove, detach, delete...) leaves what it undoes for a
// later Destroy or Recover.
func (h *Host) Fail(kind string, err error) { h.setFail(kind, err, false) }

// FailAfter is Fail for an operation that acts, then fails: the step
// failed, and what it did is there for the rollback to undo.
func (h *Host) FailAfter(kind string, err error) { h.setFail(kind, err, true) }

func (h *Host) setFail(kind string, err error, after bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.fail, kind)
	} else {
		h.fail[kind] = failure{err, after}
	}
}

// CrashAt makes the next Build stop before step as if its process had
// died there: nothing rolled back, its journal left (unlocked) for
// Builder.Recover, and Build returns an error.
func (h *Host) CrashAt(step sandbox.Step) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.crashAt = step
}

// Ops returns the operations done so far.
func (h *Host) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Left returns what the fake host holds now, sorted, each as "<kind>
// <path>": netns pins, mounts, network attachments and pause containers
// (by sandbox ID). After every sandbox is destroyed, nothing.
func (h *Host) Left() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(h.dir, "live"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		s, err := url.PathUnescape(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// do runs one fake operation: recorded, failed as asked, and, when it
// makes (or removes) something, noted live (or not).
func (h *Host) do(kind, path string, act func() error) error {
	h.mu.Lock()
	h.ops = append(h.ops, Op{Kind: kind, Path: path})
	f, failing := h.fail[kind]
	h.mu.Unlock()
	if failing && !f.after {
		return f.err
	}
	if err := act(); err != nil {
		return err
	}
	if failing {
		return f.err
	}
	return nil
}

// live notes that the fake holds (or, with held false, no longer holds) a
// resource.
func (h *Host) live(kind, path string, held bool) error {
	p := filepath.Join(h.dir, "live", url.PathEscape(kind+" "+path))
	if held {
		return os.WriteFile(p, nil, 0o644)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ErrFake is matched by the errors the fakes return on their own (an
// attachment that is not there, a pin that exists).
var ErrFake = errors.New("sandboxtest: fake host")

type hostFake struct{ h *Host }

func (f hostFake) CreateNetNS(dir, name string, opts sandbox.NetNSOptions) (string, error) {
	p := filepath.Join(dir, name)
	err := f.h.do("netns-create", p, func() error {
		if u := opts.UserNS; u != nil {
			if len(u.UIDs) == 0 || len(u.GIDs) == 0 || u.HelperBinary == "" {
				return fmt.Errorf("%w: user namespace without mappings or helper", ErrFake)
			}
			file, err := os.OpenFile(u.Path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
			if err != nil {
				return fmt.Errorf("%w: user namespace pin %s: %w", ErrFake, u.Path, err)
			}
			file.Close()
			if err := f.h.live("pin", u.Path, true); err != nil {
				return err
			}
		}
		file, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return fmt.Errorf("%w: netns pin %s: %w", ErrFake, p, err)
		}
		file.Close()
		return f.h.live("netns", p, true)
	})
	return p, err
}

func (f hostFake) RemoveNetNS(path string) error {
	return f.h.do("netns-remove", path, func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return f.h.live("netns", path, false)
	})
}

func (f hostFake) PinNamespace(path string, ns sandbox.Namespace) error {
	return f.h.do("pin", path, func() error {
		if ns.Type != specs.IPCNamespace && ns.Type != specs.UTSNamespace {
			return fmt.Errorf("%w: cannot pin a %q namespace", ErrFake, ns.Type)
		}
		file, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			return fmt.Errorf("%w: pin %s: %w", ErrFake, path, err)
		}
		file.Close()
		return f.h.live("pin", path, true)
	})
}

func (f hostFake) Unpin(path string) error {
	return f.h.do("unpin", path, func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return f.h.live("pin", path, false)
	})
}

func (f hostFake) MountShm(path string, size int64, _ string, _ *sandbox.Owner) error {
	if size <= 0 {
		return fmt.Errorf("%w: shm size %d", ErrFake, size)
	}
	return f.h.do("mount-shm", path, func() error { return f.mount(path) })
}

func (f hostFake) BindReadOnly(_, dst string) error {
	return f.h.do("bind", dst, func() error { return f.mount(dst) })
}

func (f hostFake) mount(path string) error {
	if err := os.Mkdir(path, 0o755); err != nil {
		return err
	}
	return f.h.live("mount", path, true)
}

func (f hostFake) Unmount(path string) error {
	return f.h.do("unmount", path, func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return f.h.live("mount", path, false)
	})
}

func (f hostFake) RemoveCgroup(_ context.Context, dir string) error {
	return f.h.do("cgroup-remove", dir, func() error { return nil })
}

func (f hostFake) PreparePauseRootfs(dir string, _ spec.PauseOptions) (*spec.PauseRootfs, error) {
	p := filepath.Join(dir, "pause-fake")
	if err := os.MkdirAll(p, 0o755); err != nil {
		return nil, err
	}
	return &spec.PauseRootfs{Path: p, Args: []string{spec.PauseBinaryName}}, nil
}

type networkFake struct{ h *Host }

// fakePrefix is where fake pod addresses come from: the benchmarking
// range, never a real network.
var fakePrefix = netip.MustParsePrefix("198.18.0.0/15")

func (f networkFake) file(id string) string { return filepath.Join(f.h.dir, "attachments", id) }

func (f networkFake) Prepare(_ context.Context, a *sandbox.NetworkAttachment) error {
	return f.h.do("prepare", a.SandboxID, func() error {
		a.State = json.RawMessage(`{"network":"fake","if_name":"eth0"}`)
		return nil
	})
}

func (f networkFake) Attach(ctx context.Context, a *sandbox.NetworkAttachment) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ip netip.Addr
	err := f.h.do("attach", a.SandboxID, func() error {
		f.h.mu.Lock() // one address each: Attaches and Detaches take turns
		defer f.h.mu.Unlock()
		ents, err := os.ReadDir(filepath.Join(f.h.dir, "attachments"))
		if err != nil {
			return err
		}
		used := map[netip.Addr]bool{}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(f.h.dir, "attachments", e.Name()))
			if err != nil {
				return err
			}
			var ip netip.Addr
			if err := json.Unmarshal(b, &ip); err == nil {
				used[ip] = true
			}
		}
		ip = fakePrefix.Addr().Next()
		for used[ip] {
			ip = ip.Next()
		}
		b, _ := json.Marshal(ip)
		// Whole or not at all: a Build's process may die at any moment.
		if err := atomicfile.WriteFile(f.file(a.SandboxID), b, atomicfile.Options{}); err != nil {
			return err
		}
		return f.h.live("attachment", a.SandboxID, true)
	})
	if err != nil {
		return nil, err
	}
	return []netip.Addr{ip}, nil
}

func (f networkFake) Detach(_ context.Context, a *sandbox.NetworkAttachment) error {
	return f.h.do("detach", a.SandboxID, func() error {
		f.h.mu.Lock()
		defer f.h.mu.Unlock()
		if err := os.Remove(f.file(a.SandboxID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return f.h.live("attachment", a.SandboxID, false)
	})
}

func (f networkFake) Check(_ context.Context, a *sandbox.NetworkAttachment) error {
	return f.h.do("check", a.SandboxID, func() error {
		if _, err := os.Stat(f.file(a.SandboxID)); err != nil {
			return fmt.Errorf("%w: sandbox %s is not attached", ErrFake, a.SandboxID)
		}
		return nil
	})
}

// runtimeFake keeps a container's runtime state in a file. Its pause
// "runs" until killed: Wait on a running one is an error, as it would
// never return.
type runtimeFake struct{ h *Host }

// fakePid is the PID the fake runtime gives every pause: one that no
// process has (above the kernel's pid_max limit).
const fakePid = 1 << 23

func (f runtimeFake) file(id string) string { return filepath.Join(f.h.dir, "containers", id) }

func (f runtimeFake) load(id string) (specs.State, error) {
	var st specs.State
	b, err := os.ReadFile(f.file(id))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func (f runtimeFake) save(st specs.State) error {
	b, _ := json.Marshal(st)
	return atomicfile.WriteFile(f.file(st.ID), b, atomicfile.Options{})
}

func (f runtimeFake) Create(ctx context.Context, id, bundle string) (int, error) {
	err := f.h.do("create", id, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(bundle, spec.ConfigFile)); err != nil {
			return fmt.Errorf("%w: create %s: %w", ErrFake, id, err)
		}
		if _, err := os.Stat(f.file(id)); err == nil {
			return fmt.Errorf("%w: container %s exists", ErrFake, id)
		}
		if err := f.save(specs.State{Version: specs.Version, ID: id, Status: specs.StateCreated, Pid: fakePid, Bundle: bundle}); err != nil {
			return err
		}
		return f.h.live("container", id, true)
	})
	if err != nil {
		return 0, err
	}
	return fakePid, nil
}

func (f runtimeFake) Start(_ context.Context, id string) error {
	return f.h.do("start", id, func() error {
		st, err := f.load(id)
		if err != nil {
			return fmt.Errorf("%w: start %s: %w", ErrFake, id, err)
		}
		if st.Status != specs.StateCreated {
			return fmt.Errorf("%w: start %s: the container is %s", ErrFake, id, st.Status)
		}
		st.Status = specs.StateRunning
		return f.save(st)
	})
}

func (f runtimeFake) Kill(_ context.Context, id string, sig syscall.Signal) error {
	return f.h.do("kill", id, func() error {
		st, err := f.load(id)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
			st.Status, st.Pid = specs.StateStopped, 0
		}
		return f.save(st)
	})
}

func (f runtimeFake) Wait(_ context.Context, id string) error {
	st, err := f.load(id)
	if errors.Is(err, fs.ErrNotExist) || err == nil && st.Status == specs.StateStopped {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: wait %s: the pause is %s and would never exit", ErrFake, id, st.Status)
}

func (f runtimeFake) Delete(_ context.Context, id string) error {
	return f.h.do("delete", id, func() error {
		st, err := f.load(id)
		if errors.Is(err, fs.ErrNotExist) {
			return f.h.live("container", id, false)
		}
		if err == nil && st.Status == specs.StateRunning {
			return fmt.Errorf("%w: delete %s: the container is running", ErrFake, id)
		}
		if err := os.Remove(f.file(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return f.h.live("container", id, false)
	})
}

func (f runtimeFake) State(_ context.Context, id string) (specs.State, error) {
	st, err := f.load(id)
	if errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("%w: container %s: %w", ErrFake, id, fs.ErrNotExist)
	}
	return st, err
}

var (
	_ sandbox.Host    = hostFake{}
	_ sandbox.Network = networkFake{}
	_ sandbox.Runtime = runtimeFake{}
)
