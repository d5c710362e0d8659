//go:build linux

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"os/exec"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/cri"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/sandbox"
)

// server is the CRI's RuntimeService (and ImageFsInfo) over a Builder.
type server struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	c       config
	b       *sandbox.Builder
	network *cni.Network
	log     *slog.Logger

	// The sandboxes, indexed in memory: the shim owns its state dir, so
	// Status and List answer without reading journals back.
	mu   sync.Mutex
	pods map[string]*entry
}

// entry is an indexed sandbox. Its Sandbox is never changed once stored:
// a Stop works on a copy, which replaces it.
type entry struct {
	sb    *sandbox.Sandbox
	pidfd int // of the pause while it may run; -1 if none
}

func newServer(c config, log *slog.Logger) (*server, error) {
	b, network, err := builder(c, log)
	if err != nil {
		return nil, err
	}
	return &server{c: c, b: b, network: network, log: log, pods: map[string]*entry{}}, nil
}

// adopt runs Recover and indexes every sandbox left on disk, watching the
// pauses of this boot that still run.
func (s *server) adopt(ctx context.Context) error {
	rep, err := s.b.Recover(ctx)
	if err != nil {
		s.log.Warn("recover", "error", err)
	}
	if len(rep.Destroyed)+len(rep.Orphans) > 0 {
		s.log.Info("recovered", "destroyed", len(rep.Destroyed), "orphans", len(rep.Orphans))
	}
	if err := s.b.CollectNetwork(ctx); err != nil {
		s.log.Warn("collect network", "error", err)
	}
	list, err := s.b.List()
	if err != nil {
		return err
	}
	for _, sb := range list {
		s.put(sb, adoptPause(ctx, sb))
	}
	return nil
}

// adoptPause opens a pidfd of a built sandbox's pause if it still runs
// (it is no child of this process any more); -1 if not. The runtime,
// which checks the process's start time, is asked before and after the
// open, so the pidfd is of the pause and not of a process that took its
// PID.
func adoptPause(ctx context.Context, sb *sandbox.Sandbox) int {
	if sb.State != sandbox.StateBuilt {
		return -1
	}
	st, err := sb.PauseState(ctx)
	if err != nil || st.Status != specs.StateRunning || st.Pid <= 0 {
		return -1
	}
	fd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return -1
	}
	if again, err := sb.PauseState(ctx); err != nil || again.Pid != st.Pid || again.Status != specs.StateRunning {
		unix.Close(fd)
		return -1
	}
	return fd
}

// watch opens a pidfd of the pause a Build just started: this process's
// child, whose PID no other process takes before it is reaped.
func watch(sb *sandbox.Sandbox) int {
	if sb.PausePid <= 0 {
		return -1
	}
	fd, err := unix.PidfdOpen(sb.PausePid, 0)
	if err != nil {
		return -1
	}
	return fd
}

// running reports whether the watched pause runs: its pidfd is readable
// once it has exited.
func running(pidfd int) bool {
	if pidfd < 0 {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

// put indexes sb, replacing what was indexed of it.
func (s *server) put(sb *sandbox.Sandbox, pidfd int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.pods[sb.ID]; old != nil && old.pidfd >= 0 && old.pidfd != pidfd {
		unix.Close(old.pidfd)
	}
	s.pods[sb.ID] = &entry{sb: sb, pidfd: pidfd}
}

// drop unindexes a sandbox.
func (s *server) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.pods[id]; e != nil && e.pidfd >= 0 {
		unix.Close(e.pidfd)
	}
	delete(s.pods, id)
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pods)
}

// lookup finds an indexed sandbox by ID or unique ID prefix (crictl sends
// what its user typed); nil if none. ready says whether its pause runs.
// Only the index is asked: the shim owns its state dir (it holds its
// lock), so a sandbox on disk that it has not indexed is one it is
// building (whose ID no client has been given yet, and which may yet roll
// back) or one another tool made there behind its back, which it adopts
// only at its next start.
func (s *server) lookup(ref string) (sb *sandbox.Sandbox, ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := cri.ResolveID(slices.Collect(maps.Keys(s.pods)), ref); ok {
		e := s.pods[id]
		return e.sb, running(e.pidfd)
	}
	return nil, false
}

// prune unindexes the sandboxes of a pod's name that are gone from disk:
// a BuildOrGet destroys one that needs cleanup before it builds anew.
func (s *server) prune(name string) {
	s.mu.Lock()
	var ids []string
	for id, e := range s.pods {
		if e.sb.Name == name {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		if _, err := s.b.Find(id); errors.Is(err, sandbox.ErrNotFound) {
			s.drop(id)
		}
	}
}

func (s *server) Version(context.Context, *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{Version: "0.1.0", RuntimeName: "podsmith", RuntimeVersion: version(), RuntimeApiVersion: "v1"}, nil
}

// version is the shim's module version, "devel" in a checkout.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// RunPodSandbox builds the pod and starts its pause. A retry of the same
// request (kubelet's, after a timeout) gets the same sandbox. The Build
// goes on when the client gives up, as CRI-O's does, so that the retry
// finds it; the network's and the runtime's timeouts bound it.
func (s *server) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	cfg, err := cri.Config(req)
	if err != nil {
		return nil, cri.Error(err)
	}
	sb, built, err := s.b.BuildOrGet(context.WithoutCancel(ctx), cfg)
	s.prune(cfg.Metadata.SandboxName())
	if err != nil {
		s.log.Debug("run pod sandbox", "name", cfg.Metadata.Name, "error", err)
		return nil, cri.Error(err)
	}
	if built {
		s.put(sb, watch(sb))
	} else if found, _ := s.lookup(sb.ID); found == nil {
		s.put(sb, adoptPause(ctx, sb))
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}

// StopPodSandbox stops the pause and releases the network. A sandbox that
// is not there, or stopped already, is stopped.
func (s *server) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	sb, _ := s.lookup(req.PodSandboxId)
	if sb == nil {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	stopped := *sb
	if err := stopped.Stop(ctx); err != nil {
		return nil, cri.Error(err)
	}
	s.put(&stopped, -1)
	return &runtime.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the sandbox, stopping it first if need be. A
// sandbox that is not there is removed.
func (s *server) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	sb, _ := s.lookup(req.PodSandboxId)
	if sb == nil {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	removed := *sb
	if err := removed.Destroy(ctx); err != nil {
		return nil, cri.Error(err)
	}
	s.drop(sb.ID)
	return &runtime.RemovePodSandboxResponse{}, nil
}

func (s *server) PodSandboxStatus(_ context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	sb, ready := s.lookup(req.PodSandboxId)
	if sb == nil {
		return nil, status.Errorf(codes.NotFound, "no sandbox %q", req.PodSandboxId)
	}
	resp, err := cri.Status(sb, ready, req.Verbose)
	return resp, cri.Error(err)
}

func (s *server) ListPodSandbox(_ context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	s.mu.Lock()
	items := make([]*runtime.PodSandbox, 0, len(s.pods))
	for _, e := range s.pods {
		items = append(items, cri.PodSandbox(e.sb, running(e.pidfd)))
	}
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b *runtime.PodSandbox) int { return cmp.Compare(a.CreatedAt, b.CreatedAt) })
	return &runtime.ListPodSandboxResponse{Items: cri.Filter(items, req.Filter)}, nil
}

// Status says whether the runtimes and the network can take pods: every
// runtime's binary is there, and the CNI configuration loads with its
// plugins installed.
func (s *server) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	rtReady := &runtime.RuntimeCondition{Type: runtime.RuntimeReady, Status: true}
	bins := map[string]string{"": s.c.runtime}
	maps.Copy(bins, s.c.handlers)
	for name, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			rtReady = &runtime.RuntimeCondition{Type: runtime.RuntimeReady, Reason: "RuntimeMissing", Message: "handler " + name + ": " + err.Error()}
		}
	}
	netReady := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	cniStatus := "OK"
	probe := &sandbox.NetworkAttachment{SandboxID: "status", Dir: s.b.Options().StateDir + "/network"}
	if err := s.network.Prepare(ctx, probe); err != nil {
		reason := "NetworkPluginNotReady"
		if errors.Is(err, sandbox.ErrNoNetwork) {
			reason = "NoNetworkConfig"
		}
		netReady = &runtime.RuntimeCondition{Type: runtime.NetworkReady, Reason: reason, Message: err.Error()}
		cniStatus = err.Error()
	}
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{rtReady, netReady}},
		// No user namespaces with host network (a pod's user namespace
		// owns its netns).
		Features: &runtime.RuntimeFeatures{},
	}
	// Every handler runs pods in a user namespace of their own
	// (userns_options mode POD); no recursive read-only mounts (this shim
	// runs no containers to mount anything into).
	for _, name := range slices.Sorted(maps.Keys(bins)) {
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{Name: name, Features: &runtime.RuntimeHandlerFeatures{UserNamespaces: true}})
	}
	if req.Verbose {
		cfg, _ := json.Marshal(map[string]any{
			"stateDir": s.c.root, "runDir": s.c.runRoot, "netnsDir": s.c.netnsDir,
			"cniConfDir": s.c.cniConfDir, "cniBinDir": s.c.cniBinDir,
			"runtime": s.c.runtime, "runtimeHandlers": s.c.handlers,
			"cgroupManager": s.c.cgroupManager, "seccomp": s.c.seccomp,
		})
		resp.Info = map[string]string{"config": string(cfg), "lastCNILoadStatus": cniStatus}
	}
	return resp, nil
}

func (s *server) RuntimeConfig(context.Context, *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.b.Options().CgroupManager == cgroups.Systemd {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// ImageFsInfo answers with no filesystems: this shim keeps no images
// (critest asks before every spec).
func (s *server) ImageFsInfo(context.Context, *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	return &runtime.ImageFsInfoResponse{}, nil
}
