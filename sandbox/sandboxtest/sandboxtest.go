// Package sandboxtest fakes the host for code that embeds podsmith's
// sandbox Builder, so that it can be unit-tested as a normal user, in a
// temp dir, on any OS.
//
// A Host stands in for the privileged seams of a Builder: network
// namespaces, mounts, the pause rootfs, the network and the runtime. Everything else a
// Builder does (its journal, name reservations, bundle, resolv.conf,
// hostname, hosts and config.json) happens for real in the temp dir, so a
// test sees the same files a node would. The fakes keep their state on
// disk too: a fake netns pin is an empty file, a fake mount an empty
// directory, a fake network attachment a file holding its address, a fake
// pause container a file holding its runtime state. What is
// left after a test is therefore visible, even across processes (a test
// can kill a building process and Recover in another).
//
// A Host records every operation (Ops) and can fail a named step of the
// next Builds (FailAt), for testing how the embedding code handles each
// failure.
package sandboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

// Op is one operation the fake host did.
type Op struct {
	// Kind is one of netns-create, netns-remove, mount-shm, bind,
	// unmount, prepare, attach, detach, check, create, start, kill,
	// delete.
	Kind string
	// Path is the pin or mount point; for the network and runtime ops,
	// the sandbox ID.
	Path string
}

// Host is the fake host. Its zero value is not usable; call NewHost.
type Host struct {
	dir string // the network's state: one file per attachment

	mu   sync.Mutex
	ops  []Op
	fail map[sandbox.Step]error
}

// NewHost returns a fake host keeping its network state under dir.
func NewHost(dir string) (*Host, error) {
	for _, d := range []string{"attachments", "containers"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &Host{dir: dir, fail: map[sandbox.Step]error{}}, nil
}

// NewBuilder returns a prepared Builder (see Builder.Prepare) on a fake
// host, with every directory under t.TempDir() unless opts sets it. opts is
// otherwise used as given.
func NewBuilder(t testing.TB, opts sandbox.Options) (*sandbox.Builder, *Host) {
	t.Helper()
	dir := t.TempDir()
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

// Apply plugs the fakes into opts: NetNS, Mounter, Rootfs, Network and
// Runtime (set it to nil afterwards for a Builder that starts nothing), a
// BeforeStep hook for FailAt (chained before the caller's), and, unless
// set, a HostResolvConf with a nameserver from a documentation range (the
// machine's own may only list a loopback stub, which a pod cannot use).
func (h *Host) Apply(o *sandbox.Options) error {
	o.NetNS, o.Mounter, o.Rootfs, o.Network, o.Runtime = netnsFake{h}, mountFake{h}, rootfsFake{h}, networkFake{h}, runtimeFake{h}
	next := o.BeforeStep
	o.BeforeStep = func(ctx context.Context, id string, step sandbox.Step) error {
		h.mu.Lock()
		err := h.fail[step]
		h.mu.Unlock()
		if err != nil {
			return err
		}
		if next != nil {
			return next(ctx, id, step)
		}
		return nil
	}
	if o.HostResolvConf == "" {
		p := filepath.Join(h.dir, "resolv.conf")
		if err := os.WriteFile(p, []byte("nameserver 192.0.2.53\nsearch example.test\n"), 0o644); err != nil {
			return err
		}
		o.HostResolvConf = p
	}
	return nil
}

// FailAt makes every following Build fail at step with err (before the
// step runs); a nil err clears it.
func (h *Host) FailAt(step sandbox.Step, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.fail, step)
	} else {
		h.fail[step] = err
	}
}

// Ops returns the operations done so far.
func (h *Host) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

func (h *Host) record(kind, path string) {
	h.mu.Lock()
	h.ops = append(h.ops, Op{Kind: kind, Path: path})
	h.mu.Unlock()
}

// Attachments returns the IDs of the sandboxes attached to the fake
// network now: after every sandbox is destroyed, none.
func (h *Host) Attachments() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(h.dir, "attachments"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ents))
	for i, e := range ents {
		ids[i] = e.Name()
	}
	return ids, nil
}

// ErrFake is matched by the errors the fakes return on their own (an
// attachment that is not there, a pin that exists).
var ErrFake = errors.New("sandboxtest: fake host")

type netnsFake struct{ h *Host }

func (f netnsFake) Create(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	file, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", fmt.Errorf("%w: netns pin %s: %w", ErrFake, p, err)
	}
	file.Close()
	f.h.record("netns-create", p)
	return p, nil
}

func (f netnsFake) Remove(path string) error {
	f.h.record("netns-remove", path)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

type mountFake struct{ h *Host }

func (f mountFake) MountShm(path string, size int64, _ string) error {
	if size <= 0 {
		return fmt.Errorf("%w: shm size %d", ErrFake, size)
	}
	f.h.record("mount-shm", path)
	return os.Mkdir(path, 0o777)
}

func (f mountFake) BindReadOnly(src, dst string) error {
	f.h.record("bind", dst)
	return os.Mkdir(dst, 0o755)
}

func (f mountFake) Unmount(path string) error {
	f.h.record("unmount", path)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

type rootfsFake struct{ h *Host }

func (f rootfsFake) PreparePauseRootfs(dir string, _ spec.PauseOptions) (*spec.PauseRootfs, error) {
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

func (f networkFake) Prepare(_ context.Context, a *sandbox.Attachment) error {
	f.h.record("prepare", a.SandboxID)
	a.Network, a.IfName = "fake", "eth0"
	return nil
}

func (f networkFake) Attach(ctx context.Context, a *sandbox.Attachment) (*sandbox.AttachResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.h.record("attach", a.SandboxID)
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	ents, err := os.ReadDir(filepath.Join(f.h.dir, "attachments"))
	if err != nil {
		return nil, err
	}
	used := map[netip.Addr]bool{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(f.h.dir, "attachments", e.Name()))
		if err != nil {
			return nil, err
		}
		var ip netip.Addr
		if err := json.Unmarshal(b, &ip); err == nil {
			used[ip] = true
		}
	}
	ip := fakePrefix.Addr().Next()
	for used[ip] {
		ip = ip.Next()
	}
	b, _ := json.Marshal(ip)
	if err := os.WriteFile(f.file(a.SandboxID), b, 0o644); err != nil {
		return nil, err
	}
	return &sandbox.AttachResult{IPs: []netip.Addr{ip}}, nil
}

func (f networkFake) Detach(_ context.Context, a *sandbox.Attachment) error {
	f.h.record("detach", a.SandboxID)
	f.h.mu.Lock() // Attach reads every attachment under it
	defer f.h.mu.Unlock()
	if err := os.Remove(f.file(a.SandboxID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (f networkFake) Check(_ context.Context, a *sandbox.Attachment) error {
	f.h.record("check", a.SandboxID)
	if _, err := os.Stat(f.file(a.SandboxID)); err != nil {
		return fmt.Errorf("%w: sandbox %s is not attached", ErrFake, a.SandboxID)
	}
	return nil
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
	return os.WriteFile(f.file(st.ID), b, 0o644)
}

func (f runtimeFake) Create(ctx context.Context, id, bundle string) (int, error) {
	f.h.record("create", id)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := os.Stat(filepath.Join(bundle, spec.ConfigFile)); err != nil {
		return 0, fmt.Errorf("%w: create %s: %w", ErrFake, id, err)
	}
	if _, err := os.Stat(f.file(id)); err == nil {
		return 0, fmt.Errorf("%w: container %s exists", ErrFake, id)
	}
	st := specs.State{Version: specs.Version, ID: id, Status: specs.StateCreated, Pid: fakePid, Bundle: bundle}
	return st.Pid, f.save(st)
}

func (f runtimeFake) Start(ctx context.Context, id string) error {
	f.h.record("start", id)
	st, err := f.load(id)
	if err != nil {
		return fmt.Errorf("%w: start %s: %w", ErrFake, id, err)
	}
	if st.Status != specs.StateCreated {
		return fmt.Errorf("%w: start %s: the container is %s", ErrFake, id, st.Status)
	}
	st.Status = specs.StateRunning
	return f.save(st)
}

func (f runtimeFake) Kill(_ context.Context, id string, sig syscall.Signal) error {
	f.h.record("kill", id)
	st, err := f.load(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		st.Status = specs.StateStopped
	}
	return f.save(st)
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
	f.h.record("delete", id)
	st, err := f.load(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil && st.Status != specs.StateStopped && st.Status != specs.StateCreated {
		return fmt.Errorf("%w: delete %s: the container is %s", ErrFake, id, st.Status)
	}
	if err := os.Remove(f.file(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (f runtimeFake) State(_ context.Context, id string) (specs.State, error) {
	st, err := f.load(id)
	if errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("%w: container %s: %w", ErrFake, id, fs.ErrNotExist)
	}
	return st, err
}

// Containers returns the IDs of the fake runtime's containers now: after
// every sandbox is destroyed, none.
func (h *Host) Containers() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(h.dir, "containers"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ents))
	for i, e := range ents {
		ids[i] = e.Name()
	}
	return ids, nil
}

var (
	_ sandbox.Runtime        = runtimeFake{}
	_ sandbox.NetNSManager   = netnsFake{}
	_ sandbox.Mounter        = mountFake{}
	_ sandbox.RootfsProvider = rootfsFake{}
	_ sandbox.Network        = networkFake{}
)
