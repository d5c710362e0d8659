// Command cribench times the CRI v1 RuntimeService pod sandbox RPCs
// (RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox) of
// one or more CRI runtimes, directly over gRPC: every figure is the time of
// one unary call on an open connection, with no CLI start-up in it.
//
//	cribench -endpoint podsmith=unix:///run/x/crishim.sock \
//	         -endpoint containerd-2.4=unix:///run/y/containerd.sock \
//	         -n 30 -c 1,4 -net pod,host -ref containerd-2.4
//
// Modes:
//
//   - latency (the default): -n iterations of every (network, concurrency)
//     block, the systems interleaved iteration by iteration; prints p50/p90
//     per RPC per system and the ratio of each system to the reference one
//     (-ref, by default the first endpoint); -json prints JSON instead.
//   - memory (-memory or -memory=N, N defaults to 20): on one system at a
//     time, starts N pods, sums the PSS of every process that exists because
//     of them plus the daemon's PSS growth, prints MB per pod, then stops and
//     removes the pods.
//   - smoke (-smoke): a few pod lifecycles against one endpoint, checking
//     each answer; the exit status is non-zero on any RPC error or unexpected
//     answer (for make test).
//
// Every pod cribench creates carries the label cribench.run=<run id>; it
// stops and removes every one of them before it exits, after an error or a
// first SIGINT/SIGTERM as well (a second signal exits at once).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The RPCs timed, in the order of a pod's life; runRound is the wall time
// of a round of concurrent RunPodSandbox calls (concurrency > 1 only).
const (
	rpcRun    = "RunPodSandbox"
	rpcStatus = "PodSandboxStatus"
	rpcStop   = "StopPodSandbox"
	rpcRemove = "RemovePodSandbox"
	runRound  = "RunPodSandbox round wall"
)

var rpcOrder = []string{rpcRun, runRound, rpcStatus, rpcStop, rpcRemove}

const labelRun = "cribench.run"

// endpoint is one system under test.
type endpoint struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Runtime string `json:"runtime,omitempty"`
	Version string `json:"version,omitempty"`

	conn *grpc.ClientConn
	rt   cri.RuntimeServiceClient
}

// socketPath is the endpoint's unix socket path ("" for another scheme).
func (e *endpoint) socketPath() string {
	a := e.Address
	switch {
	case strings.HasPrefix(a, "unix://"):
		return strings.TrimPrefix(a, "unix://")
	case strings.HasPrefix(a, "unix:"):
		return strings.TrimPrefix(a, "unix:")
	}
	return ""
}

type endpointsFlag []*endpoint

func (f *endpointsFlag) String() string {
	var s []string
	for _, e := range *f {
		s = append(s, e.Name+"="+e.Address)
	}
	return strings.Join(s, ",")
}

// Set takes name=address or just an address (then the name is the address).
// A bare path is a unix socket.
func (f *endpointsFlag) Set(v string) error {
	name, addr, ok := strings.Cut(v, "=")
	if !ok {
		name, addr = v, v
	}
	if name == "" || addr == "" {
		return fmt.Errorf("want name=address, got %q", v)
	}
	if !strings.Contains(addr, ":") {
		addr = "unix://" + addr
	}
	for _, e := range *f {
		if e.Name == name {
			return fmt.Errorf("endpoint name %q given twice", name)
		}
	}
	*f = append(*f, &endpoint{Name: name, Address: addr})
	return nil
}

// memoryFlag is -memory (20 pods) or -memory=N.
type memoryFlag int

func (m *memoryFlag) String() string   { return strconv.Itoa(int(*m)) }
func (m *memoryFlag) IsBoolFlag() bool { return true }
func (m *memoryFlag) Set(v string) error {
	switch v {
	case "true":
		*m = 20
	case "false":
		*m = 0
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want -memory or -memory=N, got %q", v)
		}
		*m = memoryFlag(n)
	}
	return nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func netList(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f != "pod" && f != "host" {
			return nil, fmt.Errorf("network %q: want pod or host", f)
		}
		out = append(out, f)
	}
	return out, nil
}

type options struct {
	iterations  int
	concurrency []int
	networks    []string
	handler     string
	ref         string
	jsonOut     bool
	jsonFile    string
	memory      int
	smoke       bool
	warmup      int
	rpcTimeout  time.Duration
	settle      time.Duration
	namespace   string
	logRoot     string
}

func main() {
	var eps endpointsFlag
	var mem memoryFlag
	var o options
	var conc, nets string
	flag.Var(&eps, "endpoint", "system under test, `name=unix:///path.sock` (repeat for each system)")
	flag.IntVar(&o.iterations, "n", 30, "iterations per (network, concurrency) block (smoke: 3)")
	flag.StringVar(&conc, "c", "1", "concurrency levels, comma separated (e.g. 1,4)")
	flag.StringVar(&nets, "net", "pod", "pod networks, comma separated: pod (CNI) and/or host (NamespaceMode NODE)")
	flag.StringVar(&o.handler, "runtime-handler", "", "RunPodSandboxRequest.runtime_handler")
	flag.StringVar(&o.ref, "ref", "", "reference system for the ratios (default the first endpoint)")
	flag.BoolVar(&o.jsonOut, "json", false, "print the results as JSON on stdout (progress goes to stderr)")
	flag.StringVar(&o.jsonFile, "json-file", "", "also write the results as JSON to this `file`")
	flag.Var(&mem, "memory", "memory mode: -memory (20 pods) or -memory=N; PSS per pod of each system")
	flag.BoolVar(&o.smoke, "smoke", false, "smoke test: a few checked pod lifecycles on one endpoint; exit 1 on any error")
	flag.IntVar(&o.warmup, "warmup", 1, "untimed pod lifecycles per system and network before the timed ones")
	flag.DurationVar(&o.rpcTimeout, "timeout", 2*time.Minute, "timeout of one RPC")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "memory mode: wait after the last RunPodSandbox before measuring")
	flag.StringVar(&o.namespace, "namespace", "cribench", "the pods' metadata namespace")
	flag.StringVar(&o.logRoot, "log-root", "", "where the pods' log directories go (default a new temp dir, removed at the end)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cribench -endpoint name=unix:///sock [-endpoint ...] [flags]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected argument %q (a pod count goes as -memory=N)", flag.Arg(0))
	}
	if len(eps) == 0 {
		fatalf("no -endpoint given")
	}
	var err error
	if o.concurrency, err = intList(conc); err != nil {
		fatalf("-c: %v", err)
	}
	if o.networks, err = netList(nets); err != nil {
		fatalf("-net: %v", err)
	}
	o.memory = int(mem)
	nSet := false
	flag.Visit(func(f *flag.Flag) { nSet = nSet || f.Name == "n" })
	if o.smoke {
		if len(eps) != 1 {
			fatalf("-smoke takes one endpoint")
		}
		if !nSet {
			o.iterations = 3
		}
	}
	if o.iterations < 1 {
		fatalf("-n must be at least 1")
	}
	if o.ref == "" {
		o.ref = eps[0].Name
	}
	if !slices.ContainsFunc(eps, func(e *endpoint) bool { return e.Name == o.ref }) {
		fatalf("-ref %q is not an endpoint name", o.ref)
	}
	os.Exit(run(eps, o))
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "cribench: "+format+"\n", a...)
	os.Exit(2)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "cribench: "+format+"\n", a...)
}

// bench is one run of cribench.
type bench struct {
	o      options
	eps    []*endpoint
	runID  string
	logDir string
	seq    int
	seqMu  sync.Mutex

	// live holds the pods created and not removed yet, per endpoint.
	liveMu sync.Mutex
	live   map[*endpoint]map[string]bool

	resMu   sync.Mutex
	samples map[blockKey]map[string]map[string][]time.Duration // block, system, rpc
	errs    map[blockKey]map[string]map[string]int
	errMsgs []string
}

type blockKey struct {
	Net  string
	Conc int
}

func run(eps []*endpoint, o options) (status int) {
	b := &bench{
		o: o, eps: eps,
		runID:   fmt.Sprintf("%x", rand.Uint32()),
		live:    map[*endpoint]map[string]bool{},
		samples: map[blockKey]map[string]map[string][]time.Duration{},
		errs:    map[blockKey]map[string]map[string]int{},
	}
	// The first signal cancels ctx: no new RPC starts, the in-flight ones
	// are cancelled and the pods are cleaned up; a second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logf("%v: stopping; cleaning up the pods (signal again to exit without)", s)
		cancel()
		<-sigs
		logf("second signal: exiting; pods labelled %s=%s may be left", labelRun, b.runID)
		os.Exit(130)
	}()

	if o.logRoot != "" {
		b.logDir = filepath.Join(o.logRoot, "cribench-"+b.runID)
		if err := os.MkdirAll(b.logDir, 0o755); err != nil {
			logf("%v", err)
			return 1
		}
	} else {
		d, err := os.MkdirTemp("", "cribench-"+b.runID+"-")
		if err != nil {
			logf("%v", err)
			return 1
		}
		b.logDir = d
	}
	defer os.RemoveAll(b.logDir)

	for _, e := range eps {
		c, err := grpc.NewClient(e.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			logf("%s: %v", e.Name, err)
			return 1
		}
		defer c.Close()
		e.conn, e.rt = c, cri.NewRuntimeServiceClient(c)
		vctx, vcancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := e.rt.Version(vctx, &cri.VersionRequest{Version: "v1"}, grpc.WaitForReady(true))
		vcancel()
		if err != nil {
			logf("%s (%s): Version: %v", e.Name, e.Address, err)
			return 1
		}
		e.Runtime, e.Version = v.RuntimeName, v.RuntimeVersion
		logf("%s: %s %s at %s", e.Name, e.Runtime, e.Version, e.Address)
	}
	// Whatever happens from here on, every pod of this run is removed.
	defer func() {
		if !b.cleanup() && status == 0 {
			status = 1
		}
	}()

	switch {
	case o.smoke:
		return b.smoke(ctx)
	case o.memory > 0:
		res := b.memory(ctx)
		if ctx.Err() != nil {
			return 130
		}
		b.output(res)
		for _, r := range res {
			if r.Error != "" {
				return 1
			}
		}
		return 0
	default:
		b.latency(ctx)
		if ctx.Err() != nil {
			return 130
		}
		b.output(nil)
		if len(b.errMsgs) > 0 {
			return 1
		}
		return 0
	}
}

// podConfig is the config of a new pod on e, as a kubelet would send it
// (without DNS, ports or cgroup parent).
func (b *bench) podConfig(e *endpoint, network string) *cri.PodSandboxConfig {
	b.seqMu.Lock()
	b.seq++
	n := b.seq
	b.seqMu.Unlock()
	name := fmt.Sprintf("cb-%s-%d", b.runID, n)
	mode, hostname := cri.NamespaceMode_POD, name
	if network == "host" {
		// kubelet sets no hostname for a host-network pod: it shares the
		// host's UTS namespace too.
		mode, hostname = cri.NamespaceMode_NODE, ""
	}
	logDir := filepath.Join(b.logDir, name)
	_ = os.MkdirAll(logDir, 0o755) // kubelet makes it before RunPodSandbox
	return &cri.PodSandboxConfig{
		Metadata: &cri.PodSandboxMetadata{
			Name:      name,
			Namespace: b.o.namespace,
			Uid:       fmt.Sprintf("%s-%06d-%s", b.runID, n, strings.ReplaceAll(e.Name, ".", "-")),
			Attempt:   0,
		},
		Hostname:     hostname,
		LogDirectory: logDir,
		Labels: map[string]string{
			labelRun:           b.runID,
			"cribench.system":  e.Name,
			"cribench.network": network,
			"app":              "cribench",
		},
		Linux: &cri.LinuxPodSandboxConfig{
			SecurityContext: &cri.LinuxSandboxSecurityContext{
				NamespaceOptions: &cri.NamespaceOption{
					Network: mode,
					Pid:     cri.NamespaceMode_POD,
					Ipc:     cri.NamespaceMode_POD,
				},
			},
		},
	}
}

func (b *bench) track(e *endpoint, id string, alive bool) {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	if b.live[e] == nil {
		b.live[e] = map[string]bool{}
	}
	if alive {
		b.live[e][id] = true
	} else {
		delete(b.live[e], id)
	}
}

// call runs one RPC with the RPC timeout and times it.
func (b *bench) call(ctx context.Context, f func(context.Context) error) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, b.o.rpcTimeout)
	defer cancel()
	start := time.Now()
	err := f(cctx)
	return time.Since(start), err
}

func (b *bench) runPod(ctx context.Context, e *endpoint, cfg *cri.PodSandboxConfig) (string, time.Duration, error) {
	var id string
	d, err := b.call(ctx, func(ctx context.Context) error {
		r, err := e.rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: cfg, RuntimeHandler: b.o.handler})
		if err == nil {
			id = r.PodSandboxId
			if id == "" {
				err = errors.New("empty pod sandbox id")
			}
		}
		return err
	})
	if id != "" {
		b.track(e, id, true)
	}
	return id, d, err
}

func (b *bench) status(ctx context.Context, e *endpoint, id string, verbose bool) (*cri.PodSandboxStatusResponse, time.Duration, error) {
	var resp *cri.PodSandboxStatusResponse
	d, err := b.call(ctx, func(ctx context.Context) error {
		var err error
		resp, err = e.rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id, Verbose: verbose})
		return err
	})
	return resp, d, err
}

func (b *bench) stopPod(ctx context.Context, e *endpoint, id string) (time.Duration, error) {
	return b.call(ctx, func(ctx context.Context) error {
		_, err := e.rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id})
		return err
	})
}

func (b *bench) removePod(ctx context.Context, e *endpoint, id string) (time.Duration, error) {
	d, err := b.call(ctx, func(ctx context.Context) error {
		_, err := e.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
		return err
	})
	if err == nil {
		b.track(e, id, false)
	}
	return d, err
}

// record keeps a sample (when err is nil) or counts an error.
func (b *bench) record(k blockKey, e *endpoint, rpc string, d time.Duration, err error) {
	b.resMu.Lock()
	defer b.resMu.Unlock()
	if err != nil {
		if b.errs[k] == nil {
			b.errs[k] = map[string]map[string]int{}
		}
		if b.errs[k][e.Name] == nil {
			b.errs[k][e.Name] = map[string]int{}
		}
		b.errs[k][e.Name][rpc]++
		msg := fmt.Sprintf("%s %s (%s network, c=%d): %v", e.Name, rpc, k.Net, k.Conc, err)
		b.errMsgs = append(b.errMsgs, msg)
		logf("%s", msg)
		return
	}
	if b.samples[k] == nil {
		b.samples[k] = map[string]map[string][]time.Duration{}
	}
	if b.samples[k][e.Name] == nil {
		b.samples[k][e.Name] = map[string][]time.Duration{}
	}
	b.samples[k][e.Name][rpc] = append(b.samples[k][e.Name][rpc], d)
}

// round is one round on one system: conc pods go through their lives in
// lock step, phase by phase: conc concurrent RunPodSandbox, then conc
// concurrent PodSandboxStatus, StopPodSandbox, RemovePodSandbox. So every
// RPC is timed while exactly conc calls of its kind are in flight on that
// system and nothing runs on the others. When rec is nil nothing is
// recorded (warm-up).
func (b *bench) round(ctx context.Context, e *endpoint, k blockKey, rec bool) {
	ids := make([]string, k.Conc)
	record := func(rpc string, d time.Duration, err error) {
		if rec && ctx.Err() == nil {
			b.record(k, e, rpc, d, err)
		} else if err != nil && ctx.Err() == nil {
			logf("warm-up on %s: %s: %v", e.Name, rpc, err)
		}
	}
	phase := func(rpc string, f func(i int) (time.Duration, error)) {
		var wg sync.WaitGroup
		for i := range ids {
			if ids[i] == "" && rpc != rpcRun {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := f(i)
				record(rpc, d, err)
			}()
		}
		wg.Wait()
	}
	cfgs := make([]*cri.PodSandboxConfig, k.Conc)
	for i := range cfgs {
		cfgs[i] = b.podConfig(e, k.Net)
	}
	if ctx.Err() != nil {
		return
	}
	start := time.Now()
	phase(rpcRun, func(i int) (time.Duration, error) {
		id, d, err := b.runPod(ctx, e, cfgs[i])
		ids[i] = id
		return d, err
	})
	if k.Conc > 1 && !slices.Contains(ids, "") {
		record(runRound, time.Since(start), nil)
	}
	phase(rpcStatus, func(i int) (time.Duration, error) {
		r, d, err := b.status(ctx, e, ids[i], false)
		if err == nil && r.GetStatus().GetState() != cri.PodSandboxState_SANDBOX_READY {
			err = fmt.Errorf("pod %s is %v, want SANDBOX_READY", ids[i], r.GetStatus().GetState())
		}
		return d, err
	})
	phase(rpcStop, func(i int) (time.Duration, error) { return b.stopPod(ctx, e, ids[i]) })
	phase(rpcRemove, func(i int) (time.Duration, error) { return b.removePod(ctx, e, ids[i]) })
}

// latency runs every (network, concurrency) block. Fairness: within a
// block the systems take turns iteration by iteration (a round of one
// system, then a round of the next), and the order of the turns rotates
// each iteration, so that drift and noise on the machine (page cache,
// other load, thermal state) hit every system alike and none is always
// first or last. At concurrency c a system's round is c pods in lock step
// (see round): the systems never run at the same time, so none is slowed
// by another one's work, and each sees the same shape of load (c
// simultaneous calls of one kind), like a kubelet starting c pods at once.
func (b *bench) latency(ctx context.Context) {
	warmed := map[string]bool{}
	for _, network := range b.o.networks {
		for _, c := range b.o.concurrency {
			k := blockKey{network, c}
			for _, e := range b.eps {
				for w := 0; w < b.o.warmup && !warmed[e.Name+"/"+network]; w++ {
					b.round(ctx, e, blockKey{network, 1}, false)
				}
				warmed[e.Name+"/"+network] = true
			}
			logf("%s network, concurrency %d: %d iterations over %d systems", network, c, b.o.iterations, len(b.eps))
			for i := 0; i < b.o.iterations && ctx.Err() == nil; i++ {
				for j := range b.eps {
					b.round(ctx, b.eps[(i+j)%len(b.eps)], k, true)
				}
			}
		}
	}
}

// smoke runs checked pod lifecycles on the one endpoint.
func (b *bench) smoke(ctx context.Context) int {
	e := b.eps[0]
	failures := 0
	fail := func(format string, a ...any) {
		failures++
		logf("smoke FAIL: "+format, a...)
	}
	for _, network := range b.o.networks {
		for i := 0; i < b.o.iterations && ctx.Err() == nil; i++ {
			cfg := b.podConfig(e, network)
			id, d, err := b.runPod(ctx, e, cfg)
			if err != nil {
				fail("%s network: RunPodSandbox: %v", network, err)
				continue
			}
			logf("smoke: %s network: RunPodSandbox %s in %v", network, id, d.Round(time.Millisecond))
			st, _, err := b.status(ctx, e, id, false)
			switch {
			case err != nil:
				fail("PodSandboxStatus %s: %v", id, err)
			case st.GetStatus().GetState() != cri.PodSandboxState_SANDBOX_READY:
				fail("pod %s is %v after RunPodSandbox, want SANDBOX_READY", id, st.GetStatus().GetState())
			case st.GetStatus().GetMetadata().GetName() != cfg.Metadata.Name:
				fail("pod %s: status has name %q, want %q", id, st.GetStatus().GetMetadata().GetName(), cfg.Metadata.Name)
			case st.GetStatus().GetLabels()[labelRun] != b.runID:
				fail("pod %s: status lost the label %s", id, labelRun)
			}
			if _, err := b.stopPod(ctx, e, id); err != nil {
				fail("StopPodSandbox %s: %v", id, err)
			} else if st, _, err := b.status(ctx, e, id, false); err != nil {
				fail("PodSandboxStatus %s after stop: %v", id, err)
			} else if s := st.GetStatus().GetState(); s != cri.PodSandboxState_SANDBOX_NOTREADY {
				fail("pod %s is %v after StopPodSandbox, want SANDBOX_NOTREADY", id, s)
			}
			// Stop is idempotent in the CRI.
			if _, err := b.stopPod(ctx, e, id); err != nil {
				fail("second StopPodSandbox %s: %v", id, err)
			}
			if _, err := b.removePod(ctx, e, id); err != nil {
				fail("RemovePodSandbox %s: %v", id, err)
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, b.o.rpcTimeout)
			l, err := e.rt.ListPodSandbox(lctx, &cri.ListPodSandboxRequest{Filter: &cri.PodSandboxFilter{Id: id}})
			cancel()
			if err != nil {
				fail("ListPodSandbox: %v", err)
			} else if len(l.Items) > 0 {
				fail("pod %s still listed after RemovePodSandbox", id)
			}
		}
	}
	if ctx.Err() != nil {
		return 130
	}
	if failures > 0 {
		logf("smoke: %d failures", failures)
		return 1
	}
	logf("smoke: ok (%d pods per network on %s)", b.o.iterations, e.Name)
	return 0
}

// cleanup stops and removes every pod of this run on every endpoint: the
// ones cribench knows it created, and any other labelled with the run's id
// (e.g. one whose RunPodSandbox was cancelled mid-way). It reports
// whether none is left.
func (b *bench) cleanup() bool {
	ok := true
	for _, e := range b.eps {
		if e.rt == nil {
			continue
		}
		for pass := 0; pass < 2; pass++ {
			ids := map[string]bool{}
			b.liveMu.Lock()
			for id := range b.live[e] {
				ids[id] = true
			}
			b.liveMu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			l, err := e.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{
				Filter: &cri.PodSandboxFilter{LabelSelector: map[string]string{labelRun: b.runID}}})
			cancel()
			if err != nil {
				logf("cleanup: %s: ListPodSandbox: %v", e.Name, err)
			}
			for _, p := range l.GetItems() {
				ids[p.Id] = true
			}
			if len(ids) == 0 {
				break
			}
			if pass == 1 {
				// Only pods that showed up late (or failed to go) get here.
				time.Sleep(time.Second)
			}
			for id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				if _, err := e.rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
					logf("cleanup: %s: StopPodSandbox %s: %v", e.Name, id, err)
				}
				_, err := e.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: id})
				cancel()
				if err != nil {
					logf("cleanup: %s: RemovePodSandbox %s: %v", e.Name, id, err)
					if pass == 1 {
						ok = false
					}
					continue
				}
				b.track(e, id, false)
				logf("cleanup: %s: removed pod %s", e.Name, id)
			}
		}
	}
	return ok
}

// stats of one set of samples, in milliseconds.
type stats struct {
	N      int     `json:"n"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P90    float64 `json:"p90_ms"`
	Min    float64 `json:"min_ms"`
	Max    float64 `json:"max_ms"`
	Mean   float64 `json:"mean_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the nearest-rank percentile of sorted samples.
func percentile(s []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func computeStats(d []time.Duration, errs int) stats {
	st := stats{N: len(d), Errors: errs}
	if len(d) == 0 {
		return st
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	st.P50, st.P90 = ms(percentile(s, 0.5)), ms(percentile(s, 0.9))
	st.Min, st.Max, st.Mean = ms(s[0]), ms(s[len(s)-1]), ms(sum/time.Duration(len(s)))
	return st
}

type resultRow struct {
	Network     string `json:"network"`
	Concurrency int    `json:"concurrency"`
	RPC         string `json:"rpc"`
	System      string `json:"system"`
	stats
	RatioP50 float64 `json:"ratio_p50,omitempty"` // system / reference
	RatioP90 float64 `json:"ratio_p90,omitempty"`
}

// rows returns the latency results in print order.
func (b *bench) rows() []resultRow {
	var out []resultRow
	for _, network := range b.o.networks {
		for _, c := range b.o.concurrency {
			k := blockKey{network, c}
			for _, rpc := range rpcOrder {
				if rpc == runRound && c == 1 {
					continue
				}
				ref := computeStats(b.samples[k][b.o.ref][rpc], b.errs[k][b.o.ref][rpc])
				for _, e := range b.eps {
					st := computeStats(b.samples[k][e.Name][rpc], b.errs[k][e.Name][rpc])
					r := resultRow{Network: network, Concurrency: c, RPC: rpc, System: e.Name, stats: st}
					if st.N > 0 && ref.N > 0 && ref.P50 > 0 && ref.P90 > 0 {
						r.RatioP50, r.RatioP90 = st.P50/ref.P50, st.P90/ref.P90
					}
					out = append(out, r)
				}
			}
		}
	}
	return out
}

func (b *bench) printTable(w io.Writer) {
	rows := b.rows()
	fmt.Fprintf(w, "cribench %s: %d iterations per block after %d warm-up, runtime handler %q; ratio = system / %s\n",
		b.runID, b.o.iterations, b.o.warmup, b.o.handler, b.o.ref)
	rpcW, sysW := len("RPC"), len("system")
	for _, r := range rows {
		rpcW, sysW = max(rpcW, len(r.RPC)), max(sysW, len(r.System))
	}
	for _, e := range b.eps {
		fmt.Fprintf(w, "  %-*s  %s %s at %s\n", sysW, e.Name, e.Runtime, e.Version, e.Address)
	}
	for i := 0; i < len(rows); {
		net, c := rows[i].Network, rows[i].Concurrency
		fmt.Fprintf(w, "\n== %s network, concurrency %d: %d rounds of %d pod(s) per system, times in ms\n", net, c, b.o.iterations, c)
		fmt.Fprintf(w, "%-*s  %-*s %5s %4s %8s %8s %8s %8s\n", rpcW, "RPC", sysW, "system", "n", "err", "p50", "p90", "p50/ref", "p90/ref")
		prev := ""
		for ; i < len(rows) && rows[i].Network == net && rows[i].Concurrency == c; i++ {
			r := rows[i]
			name := r.RPC
			if name == prev {
				name = ""
			}
			prev = r.RPC
			ratio := func(x float64) string {
				switch {
				case r.System == b.o.ref:
					return "ref"
				case x == 0:
					return "-"
				}
				return fmt.Sprintf("%.2f", x)
			}
			num := func(x float64) string {
				if r.N == 0 {
					return "-"
				}
				return fmt.Sprintf("%.1f", x)
			}
			fmt.Fprintf(w, "%-*s  %-*s %5d %4d %8s %8s %8s %8s\n", rpcW, name, sysW, r.System, r.N, r.Errors,
				num(r.P50), num(r.P90), ratio(r.RatioP50), ratio(r.RatioP90))
		}
	}
	if len(b.errMsgs) > 0 {
		fmt.Fprintf(w, "\n%d RPC errors, the first: %s\n", len(b.errMsgs), b.errMsgs[0])
	}
}

// output prints the results (a table, or JSON with -json) and writes the
// JSON file of -json-file.
func (b *bench) output(mem []memResult) {
	switch {
	case b.o.jsonOut:
		b.printJSON(os.Stdout, mem)
	case mem != nil:
		printMemory(os.Stdout, mem, b.o)
	default:
		b.printTable(os.Stdout)
	}
	if b.o.jsonFile != "" {
		f, err := os.Create(b.o.jsonFile)
		if err == nil {
			b.printJSON(f, mem)
			err = f.Close()
		}
		if err != nil {
			logf("-json-file: %v", err)
		}
	}
}

func (b *bench) printJSON(w io.Writer, mem []memResult) {
	out := map[string]any{
		"run_id":          b.runID,
		"endpoints":       b.eps,
		"reference":       b.o.ref,
		"runtime_handler": b.o.handler,
	}
	if mem != nil {
		out["memory"] = mem
	} else {
		out["iterations"] = b.o.iterations
		out["warmup"] = b.o.warmup
		out["results"] = b.rows()
		out["errors"] = append([]string{}, b.errMsgs...)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

// ---- memory mode ----

// memResult is the memory one system's pods cost.
type memResult struct {
	System  string `json:"system"`
	Pods    int    `json:"pods"`
	Network string `json:"network"`
	// Processes counts the pods' processes by command name, PSSKB sums
	// their PSS by command name.
	Processes map[string]int   `json:"processes"`
	PSSKB     map[string]int64 `json:"pss_kb_by_process"`
	// How the pause processes were found: "status" (the pid in
	// PodSandboxStatus's verbose info) or "pidns" (new pid namespace inits).
	Found           string  `json:"pause_found_by"`
	PodPSSKB        int64   `json:"pod_processes_pss_kb"`
	DaemonPID       int     `json:"daemon_pid,omitempty"`
	DaemonBeforeKB  int64   `json:"daemon_pss_before_kb"`
	DaemonAfterKB   int64   `json:"daemon_pss_after_kb"`
	MBPerPod        float64 `json:"mb_per_pod"`
	ProcMBPerPod    float64 `json:"pod_processes_mb_per_pod"`
	DaemonMBPerPod  float64 `json:"daemon_growth_mb_per_pod"`
	RunPodSandboxMs float64 `json:"run_pod_sandbox_p50_ms"`
	Error           string  `json:"error,omitempty"`
}

// memory measures each system in turn, alone: N pods started, then (after
// settle) the PSS of the processes that exist because of them, then the
// pods go. Which processes these are:
//
//  1. the pause processes: the pid in PodSandboxStatus's verbose info
//     (containerd reports it, as "pid" in the JSON of info["info"]); if a
//     system does not report it, the processes that appeared since the
//     first pod was started, are the init (pid 1) of a pid namespace
//     below ours, and descend from the daemon or PID 1 through new
//     processes only (not from a test binary running meanwhile);
//  2. each pause's ancestors, up to the first process that was there
//     before the pods (the daemon, PID 1 or a subreaper): a containerd
//     shim double-forks away from containerd, so it is found as the
//     parent of its pause, not as a descendant of the daemon;
//  3. every new descendant of those and of the daemon (helpers a daemon
//     keeps per pod).
//
// Processes are told apart by PID and start time, so a PID reused during
// the run is not mistaken for an old process. The daemon (found as the
// owner of the endpoint's listening socket) adds its PSS growth.
func (b *bench) memory(ctx context.Context) []memResult {
	var out []memResult
	network := b.o.networks[0]
	for _, e := range b.eps {
		if ctx.Err() != nil {
			break
		}
		r := memResult{System: e.Name, Pods: b.o.memory, Network: network, Processes: map[string]int{}, PSSKB: map[string]int64{}}
		if err := b.memoryOne(ctx, e, &r); err != nil {
			r.Error = err.Error()
			logf("memory %s: %v", e.Name, err)
		}
		out = append(out, r)
	}
	return out
}

func (b *bench) memoryOne(ctx context.Context, e *endpoint, r *memResult) error {
	n := b.o.memory
	daemon := 0
	if p := e.socketPath(); p != "" {
		if daemon = socketOwner(p); daemon == 0 {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				daemon = socketOwner(real)
			}
		}
	}
	r.DaemonPID = daemon
	if daemon == 0 {
		logf("memory %s: no process owns %s's listening socket: daemon growth not counted", e.Name, e.Address)
	}
	// Warm-up pod: the first pod pays one-off costs (a bridge, caches) the
	// daemon keeps; they are not per pod.
	for w := 0; w < b.o.warmup; w++ {
		b.round(ctx, e, blockKey{r.Network, 1}, false)
	}
	before := procTable()
	r.DaemonBeforeKB = pss(daemon)
	logf("memory %s: starting %d pods", e.Name, n)
	var ids []string
	var runs []time.Duration
	defer func() {
		for _, id := range ids {
			if _, err := b.stopPod(context.WithoutCancel(ctx), e, id); err != nil {
				logf("memory %s: StopPodSandbox %s: %v", e.Name, id, err)
			}
			if _, err := b.removePod(context.WithoutCancel(ctx), e, id); err != nil {
				logf("memory %s: RemovePodSandbox %s: %v", e.Name, id, err)
			}
		}
	}()
	for i := 0; i < n; i++ {
		id, d, err := b.runPod(ctx, e, b.podConfig(e, r.Network))
		if err != nil {
			return fmt.Errorf("RunPodSandbox %d: %w", i+1, err)
		}
		ids = append(ids, id)
		runs = append(runs, d)
	}
	r.RunPodSandboxMs = computeStats(runs, 0).P50
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.o.settle):
	}
	after := procTable()
	isNew := func(pid int) bool {
		p, ok := after[pid]
		if !ok {
			return false
		}
		o, existed := before[pid]
		return !existed || o.start != p.start
	}
	// 1. the pause processes
	pauses := map[int]bool{}
	r.Found = "status"
	for _, id := range ids {
		st, _, err := b.status(ctx, e, id, true)
		if err != nil {
			return fmt.Errorf("PodSandboxStatus %s: %w", id, err)
		}
		if pid := infoPID(st.GetInfo()); pid > 0 && isNew(pid) {
			pauses[pid] = true
		}
	}
	if len(pauses) != n {
		// Fallback: new pid namespace inits whose first ancestor from
		// before the pods is the daemon or PID 1, which leaves out the
		// pods of other programs (tests) running meanwhile, mostly.
		r.Found = "pidns"
		clear(pauses)
		for pid, p := range after {
			if !isNew(pid) || !p.pidnsInit {
				continue
			}
			q := p.ppid
			for isNew(q) {
				q = after[q].ppid
			}
			if q == daemon || q == 1 {
				pauses[pid] = true
			}
		}
	}
	if len(pauses) != n {
		logf("memory %s: found %d pause processes for %d pods (by %s)", e.Name, len(pauses), n, r.Found)
	}
	// 2. their new ancestors, 3. new descendants of all those and of the daemon
	set := map[int]bool{}
	for pid := range pauses {
		for p := pid; p > 1 && p != daemon && isNew(p); p = after[p].ppid {
			set[p] = true
		}
	}
	for pid := range after {
		if !isNew(pid) || set[pid] {
			continue
		}
		for p := after[pid].ppid; p > 1; p = after[p].ppid {
			if set[p] || p == daemon {
				set[pid] = true
				break
			}
			if _, ok := after[p]; !ok {
				break
			}
		}
	}
	for pid := range set {
		kb := pss(pid)
		r.PodPSSKB += kb
		r.Processes[after[pid].comm]++
		r.PSSKB[after[pid].comm] += kb
	}
	r.DaemonAfterKB = pss(daemon)
	growth := float64(r.DaemonAfterKB - r.DaemonBeforeKB)
	if daemon == 0 {
		growth = 0
	}
	r.ProcMBPerPod = float64(r.PodPSSKB) / 1024 / float64(n)
	r.DaemonMBPerPod = growth / 1024 / float64(n)
	r.MBPerPod = r.ProcMBPerPod + r.DaemonMBPerPod
	logf("memory %s: %d processes, %.2f MB per pod", e.Name, len(set), r.MBPerPod)
	return nil
}

func printMemory(w io.Writer, res []memResult, o options) {
	if len(res) == 0 {
		return
	}
	fmt.Fprintf(w, "\n== memory: %d pods per system, %s network (PSS, MB = 2^20 bytes)\n", o.memory, res[0].Network)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "system\tMB/pod\tprocesses/pod\tdaemon growth/pod\tdaemon PSS before→after\tpod processes (found by)\n")
	for _, r := range res {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\terror: %s\t\t\t\t\n", r.System, r.Error)
			continue
		}
		var procs []string
		for c, k := range r.Processes {
			procs = append(procs, fmt.Sprintf("%d %s %.2f MB each", k, c, float64(r.PSSKB[c])/1024/float64(k)))
		}
		sort.Strings(procs)
		growth, daemon := "n/a", "not found"
		if r.DaemonPID != 0 {
			growth = fmt.Sprintf("%.2f", r.DaemonMBPerPod)
			daemon = fmt.Sprintf("%.1f→%.1f MB", float64(r.DaemonBeforeKB)/1024, float64(r.DaemonAfterKB)/1024)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%s\t%s\t%s (%s)\n", r.System, r.MBPerPod, r.ProcMBPerPod,
			growth, daemon, strings.Join(procs, ", "), r.Found)
	}
	tw.Flush()
}

// infoPID finds "pid" in PodSandboxStatus's verbose info: containerd puts
// a JSON document with it under "info"; any top-level value is tried.
func infoPID(info map[string]string) int {
	keys := make([]string, 0, len(info))
	for k := range info {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var doc map[string]any
		if json.Unmarshal([]byte(info[k]), &doc) != nil {
			continue
		}
		if pid, ok := doc["pid"].(float64); ok && pid > 0 {
			return int(pid)
		}
	}
	return 0
}

type proc struct {
	ppid      int
	start     uint64 // start time in clock ticks since boot
	comm      string
	pidnsInit bool // pid 1 of a pid namespace below the host's
}

type procs map[int]proc

// procTable reads every process's parent, start time and name from /proc.
func procTable() procs {
	t := procs{}
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... ; comm may hold spaces and parentheses.
		s := string(stat)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		f := strings.Fields(s[rp+1:])
		if len(f) < 20 {
			continue
		}
		p := proc{comm: s[lp+1 : rp]}
		p.ppid, _ = strconv.Atoi(f[1])
		p.start, _ = strconv.ParseUint(f[19], 10, 64)
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
					ns := strings.Fields(v)
					p.pidnsInit = len(ns) > 1 && ns[len(ns)-1] == "1"
				}
			}
		}
		t[pid] = p
	}
	return t
}

// pss is a process's proportional set size in kB (0 if it is gone).
func pss(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// socketOwner finds the process listening on a unix socket path: the
// socket's inode from /proc/net/unix, then the process holding it.
func socketOwner(path string) int {
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		// Num RefCount Protocol Flags Type St Inode Path
		f := strings.Fields(l)
		if len(f) == 8 && f[7] == path {
			inodes["socket:["+f[6]+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}
