package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsmith/podsmith/internal/testutil"
)

// binDir holds crishim and cribench, built once for the black-box tests.
var binDir string

func TestMain(m *testing.M) {
	testutil.MainWithBinaries(m, func(dir string) { binDir = dir }, ".", "../cribench")
}

var (
	toolsOnce sync.Once
	toolsErr  error
	crictl    string
	critest   string
)

// criTools returns crictl and critest v1.37.0, built once into a cache by
// hack/cri-tools.sh (through the Go module proxy).
func criTools(t *testing.T) (string, string) {
	t.Helper()
	toolsOnce.Do(func() {
		out, err := exec.Command("../../hack/cri-tools.sh", "paths").Output()
		if err != nil {
			toolsErr = fmt.Errorf("hack/cri-tools.sh: %w", err)
			return
		}
		paths := strings.Fields(string(out))
		if len(paths) != 2 {
			toolsErr = fmt.Errorf("hack/cri-tools.sh printed %q", out)
			return
		}
		crictl, critest = paths[0], paths[1]
	})
	require.NoError(t, toolsErr)
	return crictl, critest
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// shim is one test's crishim: its own dirs, CNI network, cgroup parent,
// runc as the default runtime and crun as the handler "crun".
type shim struct {
	t            *testing.T
	root, sock   string
	cgroupParent string
	net          *testutil.CNINetwork
	args         []string
	cmd          *exec.Cmd
	stderr       *bytes.Buffer
	exited       chan error
	lc           *testutil.LeakCheck
	client       runtime.RuntimeServiceClient
}

func newShim(t *testing.T) *shim {
	t.Helper()
	return newShimOn(t, testutil.CNINetworkOptions{Portmap: true})
}

// newShimOn is newShim on a network made with o.
func newShimOn(t *testing.T, o testutil.CNINetworkOptions) *shim {
	t.Helper()
	testutil.RequireRoot(t)
	bins := testutil.RequireBinaries(t, "runc", "crun")
	s := &shim{t: t, root: t.TempDir(), cgroupParent: "/podsmith-test-" + randomHex(t, 4)}
	s.sock = filepath.Join(s.root, "crishim.sock")
	crun := bins["crun"]
	if hybrid, err := testutil.HybridCgroups(); err == nil && hybrid {
		crun, err = testutil.CrunWrapper(t.TempDir(), crun)
		require.NoError(t, err)
	}
	t.Cleanup(func() { assert.NoError(t, testutil.RemoveCgroup(s.cgroupParent, s.cgroupParent)) })
	s.net = testutil.NewCNINetwork(t, o)
	var skeleton []string
	for _, d := range []string{"state", "state/journals", "state/names", "state/network", "state/network/results", "run",
		"run/sandboxes", "run/runtime", "run/runtime/runc", "run/runtime/" + filepath.Base(crun), "netns"} {
		skeleton = append(skeleton, filepath.Join(s.root, d))
	}
	s.lc = testutil.CheckLeaks(t, testutil.Leaks{
		Roots:        []string{s.root},
		NetnsDir:     filepath.Join(s.root, "netns"),
		CgroupParent: s.cgroupParent,
		Ignore: []string{filepath.Join(s.root, "state", "pause"), filepath.Join(s.root, "state", "network.lock"),
			filepath.Join(s.root, "state", "network.gate"), s.sock},
		Skeleton: skeleton,
	})
	s.args = []string{
		"--listen", s.sock,
		"--root", filepath.Join(s.root, "state"), "--run-root", filepath.Join(s.root, "run"),
		"--netns-dir", filepath.Join(s.root, "netns"),
		"--cni-conf-dir", s.net.ConfDir, "--cni-bin-dir", strings.Join(s.net.BinDirs, ","),
		"--runtime", bins["runc"], "--runtime-handler", "crun=" + crun,
		"--cgroup-parent", s.cgroupParent, "--log-level", "debug",
	}
	s.start()
	t.Cleanup(s.stop)
	s.dial()
	return s
}

// dial connects a new client to the shim (a restarted one too, at once).
func (s *shim) dial() {
	s.t.Helper()
	conn, err := grpc.NewClient("unix://"+s.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(s.t, err)
	s.t.Cleanup(func() { conn.Close() })
	s.client = runtime.NewRuntimeServiceClient(conn)
}

// kill9 kills the shim as a crash would.
func (s *shim) kill9() {
	s.t.Helper()
	require.NoError(s.t, s.cmd.Process.Kill())
	<-s.exited
	s.cmd = nil
}

// start runs the shim and returns once it serves (it says so on stderr).
func (s *shim) start() {
	s.t.Helper()
	s.cmd = exec.Command(filepath.Join(binDir, "crishim"), s.args...)
	pipe, err := s.cmd.StderrPipe()
	require.NoError(s.t, err)
	require.NoError(s.t, s.cmd.Start())
	s.stderr = &bytes.Buffer{}
	serving := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.stderr.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "msg=serving") {
				once.Do(func() { close(serving) })
			}
		}
	}()
	s.exited = make(chan error, 1)
	go func() {
		<-done
		s.exited <- s.cmd.Wait()
	}()
	select {
	case <-serving:
	case err := <-s.exited:
		s.t.Fatalf("crishim exited before serving: %v\n%s", err, s.stderr)
	}
}

// stop sends SIGTERM and waits for the shim to exit.
func (s *shim) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	err := <-s.exited
	assert.NoError(s.t, err, "crishim exits 0 on SIGTERM:\n%s", s.stderr)
	s.cmd = nil
}

type result = testutil.Result

// crictl runs crictl against the shim, with no config file of the node's.
func (s *shim) crictl(args ...string) result {
	s.t.Helper()
	bin, _ := criTools(s.t)
	return testutil.Run(s.t, exec.Command(bin, append([]string{"--config", "/dev/null", "-r", "unix://" + s.sock, "--timeout", "60s"}, args...)...))
}

// ok runs crictl and requires success.
func (s *shim) ok(args ...string) string {
	s.t.Helper()
	r := s.crictl(args...)
	require.Equal(s.t, 0, r.Code, "crictl %v: %s", args, r.Stderr)
	return r.Stdout
}

// podFile writes a crictl pod config (its JSON: snake_case keys, enums as
// numbers) and returns its path.
func (s *shim) podFile(name string, hostNetwork bool) string {
	s.t.Helper()
	cfg := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "crictl-test", "uid": name + "-uid", "attempt": 1},
		"log_directory": filepath.Join(s.root, "logs", name),
		"labels":        map[string]string{"app": name, "suite": "crictl"},
		"annotations":   map[string]string{"note": "hello"},
		"linux":         map[string]any{"cgroup_parent": s.cgroupParent},
	}
	if hostNetwork {
		cfg["linux"].(map[string]any)["security_context"] = map[string]any{"namespace_options": map[string]any{"network": 2}}
	} else {
		cfg["hostname"] = name
	}
	b, err := json.Marshal(cfg)
	require.NoError(s.t, err)
	p := filepath.Join(s.t.TempDir(), name+".json")
	require.NoError(s.t, os.WriteFile(p, b, 0o644))
	return p
}

// inspect is what crictl inspectp prints.
type inspect struct {
	Status struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			UID       string `json:"uid"`
			Attempt   int    `json:"attempt"`
		} `json:"metadata"`
		Network struct {
			IP string `json:"ip"`
		} `json:"network"`
		Labels         map[string]string `json:"labels"`
		Annotations    map[string]string `json:"annotations"`
		RuntimeHandler string            `json:"runtimeHandler"`
	} `json:"status"`
	Info struct {
		Pid            int    `json:"pid"`
		ProcessStatus  string `json:"processStatus"`
		RuntimeHandler string `json:"runtimeHandler"`
		RuntimeSpec    struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"runtimeSpec"`
	} `json:"info"`
}

func (s *shim) inspectp(ref string) inspect {
	s.t.Helper()
	var in inspect
	out := s.ok("inspectp", ref)
	require.NoError(s.t, json.Unmarshal([]byte(out), &in), out)
	return in
}

// alive reports whether process pid runs: it exists and is not a zombie
// (a pause adopted after a restart is no child of the shim, which cannot
// reap it: its new parent does, in its own time).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid <= 0 || err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// A scripted crictl session, each output checked: runp, pods with its
// filters and formats, inspectp, stopp, rmp; pod network and host
// network; runc and crun.
func TestCrictlSession(t *testing.T) {
	s := newShim(t)
	for _, handler := range []string{"", "crun"} {
		for _, hostNetwork := range []bool{false, true} {
			name := fmt.Sprintf("pod-%s-%v", map[string]string{"": "runc", "crun": "crun"}[handler], hostNetwork)
			t.Run(name, func(t *testing.T) {
				runp := []string{"runp"}
				if handler != "" {
					runp = append(runp, "--runtime", handler)
				}
				id := strings.TrimSpace(s.ok(append(runp, s.podFile(name, hostNetwork))...))
				require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), id)

				table := s.ok("pods", "--name", "^"+name+"$")
				require.Contains(t, table, id[:13])
				assert.Regexp(t, regexp.MustCompile(id[:13]+`\s+.*\s+Ready\s+`+name+`\s+crictl-test\s+1\s+`), table)
				assert.Equal(t, id+"\n", s.ok("pods", "-q", "--label", "app="+name))
				assert.Equal(t, id+"\n", s.ok("pods", "-q", "--label", "app="+name, "--state", "ready"))
				assert.Empty(t, s.ok("pods", "-q", "--label", "app="+name, "--state", "notready"))
				assert.Empty(t, s.ok("pods", "-q", "--label", "app=nobody"))
				assert.Equal(t, id+"\n", s.ok("pods", "-q", "--id", id[:20]), "a prefix of the ID")

				var list struct {
					Items []struct {
						ID             string            `json:"id"`
						State          string            `json:"state"`
						CreatedAt      string            `json:"createdAt"`
						Labels         map[string]string `json:"labels"`
						RuntimeHandler string            `json:"runtimeHandler"`
					} `json:"items"`
				}
				require.NoError(t, json.Unmarshal([]byte(s.ok("pods", "--label", "app="+name, "-o", "json")), &list))
				require.Len(t, list.Items, 1)
				assert.Equal(t, "SANDBOX_READY", list.Items[0].State)
				assert.NotEmpty(t, list.Items[0].CreatedAt)
				assert.Equal(t, map[string]string{"app": name, "suite": "crictl"}, list.Items[0].Labels)
				assert.Equal(t, handler, list.Items[0].RuntimeHandler)

				in := s.inspectp(id[:16])
				assert.Equal(t, id, in.Status.ID)
				assert.Equal(t, "SANDBOX_READY", in.Status.State)
				assert.Equal(t, name, in.Status.Metadata.Name)
				assert.Equal(t, "crictl-test", in.Status.Metadata.Namespace)
				assert.Equal(t, 1, in.Status.Metadata.Attempt)
				assert.Equal(t, "hello", in.Status.Annotations["note"])
				assert.Equal(t, handler, in.Status.RuntimeHandler)
				assert.Equal(t, handler, in.Info.RuntimeHandler)
				assert.Equal(t, "running", in.Info.ProcessStatus)
				assert.True(t, alive(in.Info.Pid), "the pause runs")
				if hostNetwork {
					assert.Empty(t, in.Status.Network.IP)
				} else {
					ip, err := netip.ParseAddr(in.Status.Network.IP)
					require.NoError(t, err, in.Status.Network.IP)
					assert.True(t, s.net.Subnet.Contains(ip))
				}

				assert.Equal(t, "Stopped sandbox "+id[:16]+"\n", s.ok("stopp", id[:16]))
				assert.False(t, alive(in.Info.Pid), "the pause is gone")
				assert.Equal(t, id+"\n", s.ok("pods", "-q", "--label", "app="+name, "--state", "notready"))
				stopped := s.inspectp(id)
				assert.Equal(t, "SANDBOX_NOTREADY", stopped.Status.State)
				assert.Empty(t, stopped.Status.Network.IP)
				assert.Empty(t, s.net.Allocations(), "the address is released")
				assert.Empty(t, s.net.Ports(), "the veth is gone")

				assert.Equal(t, "Removed sandbox "+id[:16]+"\n", s.ok("rmp", id[:16]))
				assert.Empty(t, s.ok("pods", "-q", "--label", "app="+name))
				r := s.crictl("inspectp", id)
				assert.Equal(t, 1, r.Code)
				assert.Contains(t, r.Stderr, "NotFound")
			})
		}
	}
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}

// RunPodSandbox behaves as kubelet needs on retries and errors map to
// gRPC codes; Stop and Remove are idempotent.
func TestRPCs(t *testing.T) {
	s := newShim(t)
	ctx := context.Background()
	cfg := func(name string) *runtime.PodSandboxConfig {
		return &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "rpc-test", Uid: name + "-uid"},
			Labels:   map[string]string{"app": name},
			Linux:    &runtime.LinuxPodSandboxConfig{CgroupParent: s.cgroupParent},
		}
	}
	first, err := s.client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg("web")})
	require.NoError(t, err)
	again, err := s.client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg("web")})
	require.NoError(t, err, "a retry with the same config")
	assert.Equal(t, first.PodSandboxId, again.PodSandboxId)

	other := cfg("web")
	other.Labels["changed"] = "yes"
	_, err = s.client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: other})
	assert.Equal(t, codes.AlreadyExists, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), first.PodSandboxId)

	bad := cfg("bad")
	bad.Metadata.Namespace = "no spaces allowed"
	bad.DnsConfig = &runtime.DNSConfig{Servers: []string{"not-an-ip"}}
	_, err = s.client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: bad})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "metadata.namespace")
	assert.Contains(t, status.Convert(err).Message(), "dns_config.servers[0]")

	userns := cfg("userns")
	userns.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
		UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD},
	}}
	_, err = s.client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: userns})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	_, err = s.client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg("h"), RuntimeHandler: "kata"})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	_, err = s.client.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: "0c6f1b34-9f9a-4d3e-8a84-7f6c0b2e1d55"})
	assert.Equal(t, codes.NotFound, status.Code(err))
	for range 2 {
		_, err = s.client.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: "0c6f1b34-9f9a-4d3e-8a84-7f6c0b2e1d55"})
		require.NoError(t, err, "stop of an unknown sandbox")
		_, err = s.client.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: "0c6f1b34-9f9a-4d3e-8a84-7f6c0b2e1d55"})
		require.NoError(t, err, "remove of an unknown sandbox")
	}

	// Remove of a ready sandbox stops it first; twice is fine.
	for range 2 {
		_, err = s.client.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: first.PodSandboxId})
		require.NoError(t, err)
	}
	list, err := s.client.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	require.NoError(t, err)
	assert.Empty(t, list.Items)

	// Four clients ask for one pod at once: one Build, one sandbox; four
	// removals at once all succeed.
	ids := make(chan string, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			r, err := s.client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg("race")})
			assert.NoError(t, err)
			if r != nil {
				ids <- r.PodSandboxId
			}
		})
	}
	wg.Wait()
	close(ids)
	var raced []string
	for id := range ids {
		raced = append(raced, id)
	}
	require.Len(t, raced, 4)
	for _, id := range raced {
		assert.Equal(t, raced[0], id)
	}
	for range 4 {
		wg.Go(func() {
			_, err := s.client.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: raced[0]})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	list, err = s.client.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	require.NoError(t, err)
	assert.Empty(t, list.Items)

	st, err := s.client.Status(ctx, &runtime.StatusRequest{Verbose: true})
	require.NoError(t, err)
	for _, c := range st.Status.Conditions {
		assert.True(t, c.Status, "%s: %s", c.Type, c.Message)
	}
	var names []string
	for _, h := range st.RuntimeHandlers {
		names = append(names, h.Name)
		assert.True(t, h.Features.UserNamespaces, "user namespaces: critest runs their specs")
	}
	assert.Equal(t, []string{"", "crun"}, names)
	rc, err := s.client.RuntimeConfig(ctx, &runtime.RuntimeConfigRequest{})
	require.NoError(t, err)
	assert.Equal(t, runtime.CgroupDriver_CGROUPFS, rc.Linux.CgroupDriver)
	_, err = s.client.ListMetricDescriptors(ctx, &runtime.ListMetricDescriptorsRequest{})
	assert.Equal(t, codes.Unimplemented, status.Code(err))
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}

// After a restart the shim adopts the pauses that still run; one that
// exited while it was down is NOTREADY. SIGTERM leaves sandboxes running.
func TestRestart(t *testing.T) {
	s := newShim(t)
	stay := strings.TrimSpace(s.ok("runp", s.podFile("stay", false)))
	gone := strings.TrimSpace(s.ok("runp", s.podFile("gone", false)))
	stayPid, gonePid := s.inspectp(stay).Info.Pid, s.inspectp(gone).Info.Pid

	s.stop()
	require.True(t, alive(stayPid), "SIGTERM leaves the sandboxes running")
	require.True(t, alive(gonePid))
	require.NoError(t, syscall.Kill(gonePid, syscall.SIGKILL))
	s.start()

	assert.Equal(t, "SANDBOX_READY", s.inspectp(stay).Status.State)
	assert.Equal(t, "SANDBOX_NOTREADY", s.inspectp(gone).Status.State)
	assert.Equal(t, stay+"\n", s.ok("pods", "-q", "--state", "ready"))
	s.ok("stopp", stay, gone)
	assert.False(t, alive(stayPid))
	s.ok("rmp", stay, gone)
	assert.Empty(t, s.ok("pods", "-q"))
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}

// A second shim on the same dirs refuses to start: it would not see the
// first's sandboxes, and would call their pauses not ready.
func TestSecondShimOnTheSameDirs(t *testing.T) {
	s := newShim(t)
	id := strings.TrimSpace(s.ok("runp", s.podFile("first", false)))
	args := slices.Clone(s.args)
	args[slices.Index(args, "--listen")+1] = filepath.Join(s.root, "second.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a second shim that serves is a failure, not a hang
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "crishim"), args...).CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	assert.Equal(t, 1, ee.ExitCode())
	assert.Contains(t, string(out), "another crishim serves it")
	assert.Equal(t, "SANDBOX_READY", s.inspectp(id).Status.State, "the first shim serves on")
	s.ok("stopp", id)
	s.ok("rmp", id)
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}

// A sandbox being built is not the clients' yet: its ID, read from the
// journals while its ADD runs, is not found, and once its Build has
// failed and rolled back it is not listed either.
func TestABuildInFlightIsNotListed(t *testing.T) {
	s := newShimOn(t, testutil.CNINetworkOptions{IPAM: "gated"})
	gate := s.net.WriteGatedIPAM(t)
	ctx := context.Background()
	ran := make(chan error, 1)
	go func() {
		_, err := s.client.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "inflight", Namespace: "default", Uid: "inflight-uid"},
			Linux:    &runtime.LinuxPodSandboxConfig{CgroupParent: s.cgroupParent},
		}})
		ran <- err
	}()
	pid := gate.Started(t)
	journals, err := os.ReadDir(filepath.Join(s.root, "state", "journals"))
	require.NoError(t, err)
	require.Len(t, journals, 1)
	id := journals[0].Name()
	// Answered at once, not once the Build is done (which waits for this
	// test): a deadline makes a wait a failure, not a hang.
	quick, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.client.PodSandboxStatus(quick, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	assert.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	_, err = s.client.StopPodSandbox(quick, &runtime.StopPodSandboxRequest{PodSandboxId: id})
	assert.NoError(t, err, "a stop of what is not there is done")

	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL)) // the ADD fails
	require.Error(t, <-ran)
	list, err := s.client.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	require.NoError(t, err)
	assert.Empty(t, list.Items)
	assert.Empty(t, s.net.Allocations())
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}

// The shim killed (-9) at random moments of a RunPodSandbox, then
// restarted: what a Build finished runs on (adopted, READY), what it did
// not finish is gone (Recover), and in the end nothing is left.
func TestShimKilledDuringRuns(t *testing.T) {
	s := newShim(t)
	ctx := context.Background()
	built := 0
	for i := range 20 {
		name := fmt.Sprintf("kill-%d", i)
		req := &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "kill-test", Uid: name + "-uid"},
			Linux:    &runtime.LinuxPodSandboxConfig{CgroupParent: s.cgroupParent},
		}}
		ran := make(chan error, 1)
		client := s.client
		go func() {
			_, err := client.RunPodSandbox(ctx, req)
			ran <- err
		}()
		// The moment of the crash: anywhere in a Run (some 35 ms here).
		time.Sleep(time.Duration(mrand.IntN(50)) * time.Millisecond)
		s.kill9()
		<-ran
		s.start()
		s.dial()
		list, err := s.client.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		require.NoError(t, err)
		for _, it := range list.Items {
			assert.Equal(t, runtime.PodSandboxState_SANDBOX_READY, it.State, "a sandbox that outlived the crash is whole")
			st, err := s.client.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: it.Id, Verbose: true})
			require.NoError(t, err)
			var info struct{ Pid int }
			require.NoError(t, json.Unmarshal([]byte(st.Info["info"]), &info))
			assert.True(t, alive(info.Pid), "its pause runs")
			_, err = s.client.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: it.Id})
			require.NoError(t, err)
			built++
		}
		assert.Empty(t, s.net.Allocations(), "round %d", i)
		assert.Empty(t, s.net.PortsAfterTeardown(), "round %d: the kernel removes a veth that no cached result names, after Recover unpinned its netns", i)
	}
	t.Logf("%d of 20 Runs were built before the kill", built)
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}

// critest's pod-sandbox specs pass, and its user namespace specs that
// expect a refusal (the shim says its handlers have user namespaces).
func TestCritest(t *testing.T) {
	s := newShim(t)
	_, bin := criTools(t)
	focus := `PodSandbox runtime should support basic operations|Idempotence (StopPodSandbox|RemovePodSandbox)|Runtime info|` +
		`should support returning metrics descriptors|UserNamespaces when Host idmap mount support is not needed runtime should fail`
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-runtime-endpoint", "unix://"+s.sock, "-image-endpoint", "unix://"+s.sock,
		"-ginkgo.focus", focus, "-ginkgo.no-color")
	cmd.Dir = t.TempDir() // critest reads crictl.yaml from the parent of its working dir
	out, err := cmd.CombinedOutput()
	summary := regexp.MustCompile(`(?m)^Ran \d+ of \d+ Specs.*$|^(SUCCESS|FAIL)!.*$`).FindAllString(string(out), -1)
	t.Logf("critest: %s", strings.Join(summary, " / "))
	require.NoError(t, err, "critest:\n%s\ncrishim:\n%s", out, s.stderr)
	assert.Regexp(t, `Ran 13 of \d+ Specs`, string(out), "the 9 pod-sandbox specs and the 4 user namespace ones")
	assert.Regexp(t, `SUCCESS! -- [1-9]\d* Passed \| 0 Failed`, string(out))
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}

// cribench's smoke run: checked pod lifecycles over gRPC, pod and host
// network.
func TestCribenchSmoke(t *testing.T) {
	s := newShim(t)
	out, err := exec.Command(filepath.Join(binDir, "cribench"), "-smoke", "-endpoint", "podsmith=unix://"+s.sock,
		"-net", "pod,host", "-log-root", t.TempDir()).CombinedOutput()
	require.NoError(t, err, "cribench:\n%s\ncrishim:\n%s", out, s.stderr)
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}

// A pod in a user namespace of its own, over gRPC: the shim passes
// userns_options through; the pause runs as a mapped, unprivileged user of
// the node; a refused mapping is InvalidArgument naming the field.
func TestUserNamespacePod(t *testing.T) {
	s := newShim(t)
	// The pod's root, an unprivileged user of the node, reaches its
	// bundle through the run dir: searchable by others.
	for d := s.root; d != os.TempDir() && d != filepath.Dir(d); d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o711))
	}
	ctx := context.Background()
	const host = 1 << 30
	m := []*runtime.IDMapping{{HostId: host, ContainerId: 0, Length: 65536}}
	req := &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "userns", Namespace: "userns-test", Uid: "userns-uid"},
		Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: s.cgroupParent, SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}},
		}},
	}}
	run, err := s.client.RunPodSandbox(ctx, req)
	require.NoError(t, err)
	st, err := s.client.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: run.PodSandboxId, Verbose: true})
	require.NoError(t, err)
	assert.Equal(t, runtime.PodSandboxState_SANDBOX_READY, st.Status.State)
	u := st.Status.Linux.Namespaces.Options.UsernsOptions
	require.NotNil(t, u, "the status shows the user namespace")
	assert.Equal(t, runtime.NamespaceMode_POD, u.Mode)
	require.Len(t, u.Uids, 1)
	assert.Equal(t, uint32(host), u.Uids[0].HostId)
	var info struct{ Pid int }
	require.NoError(t, json.Unmarshal([]byte(st.Info["info"]), &info))
	uidMap, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", info.Pid))
	require.NoError(t, err)
	assert.Equal(t, []string{"0", fmt.Sprint(host), "65536"}, strings.Fields(string(uidMap)))

	bad := proto.Clone(req).(*runtime.RunPodSandboxRequest)
	bad.Config.Metadata.Name = "userns-bad"
	bad.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Uids = []*runtime.IDMapping{{HostId: 0, ContainerId: 0, Length: 65536}}
	_, err = s.client.RunPodSandbox(ctx, bad)
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "userns_options.uids[0].host_id")

	_, err = s.client.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId})
	require.NoError(t, err)
	_, err = s.client.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId})
	require.NoError(t, err)
	s.stop()
	assert.Empty(t, s.lc.Leaked())
}
