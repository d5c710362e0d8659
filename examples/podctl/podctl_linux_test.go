package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/pod"
)

// podctlBin is podctl built once for the black-box tests.
var podctlBin string

func TestMain(m *testing.M) {
	testutil.MainWithBinaries(m, func(dir string) { podctlBin = filepath.Join(dir, "podctl") }, ".")
}

// env is one test's podctl: its own roots, runtime and cgroup parent.
type env struct {
	t            *testing.T
	root         string
	runtime      string
	cgroupParent string
	cniConfDir   string // an empty dir unless a test sets its network
	cniBinDirs   []string
	lc           *testutil.LeakCheck
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// newEnv gives a privileged test its podctl roots under the leak checker.
// crun runs through testutil.CrunWrapper on a hybrid cgroup host: the
// test applies the workaround, podctl knows nothing of it.
func newEnv(t *testing.T, runtime string) *env {
	t.Helper()
	testutil.RequireRoot(t)
	bins := testutil.RequireBinaries(t, runtime, "nsenter")
	require.NoError(t, testutil.BecomeSubreaper())
	root := t.TempDir()
	e := &env{t: t, root: root, runtime: bins[runtime], cgroupParent: "/podsmith-test-" + randomHex(t, 4), cniConfDir: t.TempDir()}
	if runtime == "crun" {
		hybrid, err := testutil.HybridCgroups()
		require.NoError(t, err)
		if hybrid {
			dir := t.TempDir()
			e.runtime, err = testutil.CrunWrapper(dir, bins[runtime])
			require.NoError(t, err)
		}
	}
	t.Cleanup(func() { assert.NoError(t, testutil.RemoveCgroup(e.cgroupParent, e.cgroupParent)) })
	// podctl's base directories and the network lock files stay (they are
	// the node's, not a pod's); anything else left under root is a leak.
	var skeleton []string
	for _, d := range []string{"state", "state/journals", "state/names", "state/network", "state/network/results", "run",
		"run/sandboxes", "run/joins", "run/runtime", "run/runtime/" + filepath.Base(e.runtime), "netns"} {
		skeleton = append(skeleton, filepath.Join(root, d))
	}
	e.lc = testutil.CheckLeaks(t, testutil.Leaks{
		Roots:        []string{root},
		NetnsDir:     filepath.Join(root, "netns"),
		CgroupParent: e.cgroupParent,
		Ignore: []string{filepath.Join(root, "state", "pause"),
			filepath.Join(root, "state", "network.lock"), filepath.Join(root, "state", "network.gate")},
		Skeleton: skeleton,
	})
	return e
}

type result = testutil.Result

func (e *env) podctl(args ...string) result {
	e.t.Helper()
	return testutil.Run(e.t, e.command(args...))
}

func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.podctl(args...)
	require.Equal(e.t, 0, r.Code, "podctl %v: %s", args, r.Stderr)
	require.Empty(e.t, r.Stderr, "podctl %v", args)
	return r.Stdout
}

func (e *env) inspect(ref string) view {
	e.t.Helper()
	var v view
	require.NoError(e.t, json.Unmarshal([]byte(e.ok("inspect", ref)), &v))
	return v
}

var samples = []string{"basic.json", "basic.yaml", "hostnet.json", "dns.json", "sysctls.json", "portmap.json", "privileged.json"}

// TestSamples runs every sample pod through run, inspect, stop and rm,
// with runc and with crun, and looks inside the pause from the host.
func TestSamples(t *testing.T) {
	testutil.RequireRoot(t)
	node, err := os.Hostname()
	require.NoError(t, err)
	for _, runtime := range []string{"runc", "crun"} {
		for _, sample := range samples {
			t.Run(runtime+"/"+sample, func(t *testing.T) {
				e := newEnv(t, runtime)
				cfgPath := filepath.Join("..", "pods", sample)
				cfg := readSample(t, cfgPath)

				id := strings.TrimSpace(e.ok("run", cfgPath))
				require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{64}$`), id, "run prints the ID alone")

				v := e.inspect(id)
				assert.Equal(t, stateReady, v.State)
				assert.Equal(t, id, v.ID)
				assert.Equal(t, cfg.Metadata, v.Metadata)
				assert.Equal(t, fmt.Sprintf("k8s_%s_%s_%s_%d", cfg.Metadata.Name, cfg.Metadata.Namespace, cfg.Metadata.UID, cfg.Metadata.Attempt), v.Name)
				assert.Equal(t, labels(cfg), v.Labels)
				assert.NotZero(t, v.PausePID)
				assert.NotZero(t, v.MonitorPID)
				e.lc.TrackProcess(v.PausePID)
				e.lc.TrackProcess(v.MonitorPID)
				assert.True(t, alive(v.PausePID), "the pause is running")
				wantHost := cfg.Hostname
				if cfg.HostNetwork() {
					wantHost = node
					assert.Empty(t, v.NetnsPath)
					assert.Len(t, v.Timings, 9, "no netns and no network steps")
				} else {
					assert.Len(t, v.Timings, 11)
					assert.FileExists(t, v.NetnsPath)
				}
				assert.Equal(t, wantHost, v.Hostname)
				// From the host, inside the pause: its hostname and its
				// resolv.conf (the one podsmith wrote).
				out, err := exec.Command("nsenter", "-t", fmt.Sprint(v.PausePID), "-u", "hostname").Output()
				require.NoError(t, err)
				assert.Equal(t, wantHost, strings.TrimSpace(string(out)))
				inside, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", v.PausePID))
				require.NoError(t, err)
				written, err := os.ReadFile(filepath.Join(v.BundleDir, "resolv.conf"))
				require.NoError(t, err)
				assert.Equal(t, string(written), string(inside))
				if cfg.DNSConfig != nil {
					assert.Contains(t, string(inside), "nameserver "+cfg.DNSConfig.Servers[0])
				}
				for name, value := range sysctls(cfg) {
					p := "/proc/sys/" + strings.NewReplacer(".", "/").Replace(strings.NewReplacer("/", ".").Replace(name))
					out, err := exec.Command("nsenter", "-t", fmt.Sprint(v.PausePID), "-n", "-i", "cat", p).Output()
					require.NoError(t, err, name)
					assert.Equal(t, strings.Fields(value), strings.Fields(string(out)), name)
				}

				// ls shows it, by name too.
				var list []view
				require.NoError(t, json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &list))
				require.Len(t, list, 1)
				assert.Equal(t, id, list[0].ID)
				assert.Contains(t, e.ok("ls"), id[:13])
				assert.Equal(t, id, e.inspect(v.Name).ID)

				// rm refuses a running sandbox.
				r := e.podctl("rm", id)
				assert.Equal(t, 1, r.Code)
				assert.Contains(t, r.Stderr, "is running")

				e.ok("stop", id)
				require.NoError(t, testutil.WaitExit(v.MonitorPID), "reap the monitor, orphaned to this subreaper")
				assert.False(t, alive(v.PausePID), "the pause is gone")
				stopped := e.inspect(id)
				assert.Equal(t, stateNotReady, stopped.State)
				assert.Zero(t, stopped.PausePID)
				e.ok("stop", id) // idempotent

				e.ok("rm", id)
				require.NoError(t, json.Unmarshal([]byte(e.ok("ls", "-o", "json")), &list))
				assert.Empty(t, list)
				// Gone: as crictl, stop and rm say so, unless told not to.
				for _, cmd := range []string{"rm", "stop", "inspect"} {
					r = e.podctl(cmd, id)
					assert.Equal(t, 1, r.Code, cmd)
					assert.Equal(t, fmt.Sprintf("podctl: no sandbox %q\n", id), r.Stderr, cmd)
				}
				e.ok("rm", "--ignore-missing", id)
				e.ok("stop", "--ignore-missing", id)
				assert.Empty(t, e.lc.Leaked())
			})
		}
	}
}

func TestRmForceAndNoStart(t *testing.T) {
	e := newEnv(t, "runc")
	id := strings.TrimSpace(e.ok("run", "../pods/basic.json"))
	v := e.inspect(id)
	e.lc.TrackProcess(v.PausePID)
	e.lc.TrackProcess(v.MonitorPID)
	e.ok("rm", "-f", v.Name)
	require.NoError(t, testutil.WaitExit(v.MonitorPID))
	assert.False(t, alive(v.PausePID))

	// Built but never started: notready, and rm needs no -f.
	id = strings.TrimSpace(e.ok("run", "--no-start", "../pods/basic.json"))
	v = e.inspect(id)
	assert.Equal(t, stateNotReady, v.State)
	assert.Zero(t, v.PausePID)
	e.ok("rm", id)
	assert.Empty(t, e.lc.Leaked())
}

// stop and rm of an ID prefix that matches two sandboxes refuse, and touch
// neither (CRI's "already gone" success is for a sandbox that is not there).
func TestAmbiguousIDPrefix(t *testing.T) {
	e := newEnv(t, "runc")
	dir := t.TempDir()
	// 17 IDs: two of them share their first hex digit.
	byDigit := map[byte][]string{}
	var prefix string
	for i := 0; prefix == ""; i++ {
		p := filepath.Join(dir, fmt.Sprintf("amb-%d.json", i))
		require.NoError(t, os.WriteFile(p, fmt.Appendf(nil,
			`{"metadata":{"name":"amb-%d","namespace":"default","uid":"u-%d"},"linux":{"security_context":{"namespace_options":{"network":2}}}}`, i, i), 0o644))
		id := strings.TrimSpace(e.ok("run", "--no-start", p))
		byDigit[id[0]] = append(byDigit[id[0]], id)
		if len(byDigit[id[0]]) == 2 {
			prefix = id[:1]
		}
	}
	for _, cmd := range []string{"stop", "rm"} {
		r := e.podctl(cmd, prefix)
		assert.Equal(t, 1, r.Code, cmd)
		assert.Contains(t, r.Stderr, "matches more than one sandbox", cmd)
	}
	for _, ids := range byDigit {
		for _, id := range ids {
			assert.Equal(t, stateNotReady, e.inspect(id).State, "untouched")
			e.ok("rm", id)
		}
	}
	assert.Empty(t, e.lc.Leaked())
}

func TestRunFailureLeavesNothing(t *testing.T) {
	e := newEnv(t, "runc")
	// A runtime that fails: the sandbox built for it is destroyed again.
	e.runtime = filepath.Join(t.TempDir(), "runc") // fails; named runc, as podctl keys its state dir by the name
	require.NoError(t, os.WriteFile(e.runtime, []byte("#!/bin/sh\necho 'no runtime today' >&2\nexit 1\n"), 0o755))
	r := e.podctl("run", "../pods/basic.json")
	assert.Equal(t, 1, r.Code)
	assert.Regexp(t, `^podctl: .*no runtime today.*\n$`, r.Stderr)
	assert.Empty(t, r.Stdout)
	require.NoError(t, json.Unmarshal([]byte(e.ok("ls", "-o", "json")), new([]view)))
	assert.Equal(t, "[]\n", e.ok("ls", "-o", "json"))
}

func TestBadInputs(t *testing.T) {
	e := newEnv(t, "runc")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	cases := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "nope.json"), "no such file"},
		{"invalid JSON", write("bad.json", `{"metadata": {"name": "x",`), "invalid JSON"},
		{"invalid YAML", write("bad.yaml", "metadata:\n  name: x\n bad: [\n"), "invalid YAML"},
		{"unknown field", write("unknown.json", `{"metadata":{"name":"x","namespace":"d","uid":"u"},"linux":{"security_context":{"netwrok":2}}}`), "linux.security_context.netwrok: unknown field"},
		{"bad enum", write("enum.json", `{"metadata":{"name":"x","namespace":"d","uid":"u"},"linux":{"security_context":{"namespace_options":{"network":7}}}}`), "linux.security_context.namespace_options.network"},
		{"unsupported value", write("sysctl.json", `{"metadata":{"name":"x","namespace":"d","uid":"u"},"linux":{"sysctls":{"kernel.panic":"1"}}}`), `linux.sysctls["kernel.panic"]`},
		{"wrong type", write("type.json", `{"metadata":{"name":"x","namespace":"d","uid":"u"},"port_mappings":[{"container_port":"80"}]}`), "port_mappings[0].container_port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.podctl("run", c.path)
			assert.Equal(t, 1, r.Code)
			assert.Empty(t, r.Stdout)
			assert.Equal(t, 1, strings.Count(r.Stderr, "\n"), "one line: %q", r.Stderr)
			assert.True(t, strings.HasPrefix(r.Stderr, "podctl: "), r.Stderr)
			assert.Contains(t, r.Stderr, c.want)
			if c.name != "missing file" {
				assert.Contains(t, r.Stderr, c.path, "the error names the file")
			}
			ents, err := os.ReadDir(e.root)
			require.NoError(t, err)
			assert.Empty(t, ents, "nothing built")
		})
	}

	for _, args := range [][]string{{}, {"frobnicate"}, {"run"}, {"run", "a", "b"}, {"ls", "-o", "yaml"}, {"inspect"}, {"rm", "-x", "id"}, {"--log-level", "loud", "ls"}} {
		r := e.podctl(args...)
		assert.Equal(t, 2, r.Code, "usage error for %v: %s", args, r.Stderr)
		assert.True(t, strings.HasPrefix(r.Stderr, "podctl: "), r.Stderr)
	}
	r := e.podctl("inspect", "no-such-sandbox")
	assert.Equal(t, 1, r.Code)
	assert.Equal(t, "podctl: no sandbox \"no-such-sandbox\"\n", r.Stderr)
}

// TestCrictlFormat builds a pod config written the way crictl's
// documentation writes them.
func TestCrictlFormat(t *testing.T) {
	e := newEnv(t, "runc")
	p := filepath.Join(t.TempDir(), "pod-config.json")
	logs := filepath.Join(e.root, "logs")
	require.NoError(t, os.WriteFile(p, []byte(`{
    "metadata": {
        "name": "nginx-sandbox",
        "namespace": "default",
        "attempt": 1,
        "uid": "hdishd83djaidwnduwk28bcsb"
    },
    "log_directory": "`+logs+`",
    "dns_config": {
        "servers": ["10.96.0.10"],
        "searches": ["default.svc.cluster.local"],
        "options": ["ndots:5"]
    },
    "port_mappings": [
        {"protocol": 0, "container_port": 80, "host_port": 8080}
    ],
    "labels": {"app": "nginx"},
    "annotations": {"io.kubernetes.pod.terminationGracePeriod": "30"},
    "linux": {
        "security_context": {
            "namespace_options": {"network": 2, "pid": 1, "ipc": 0}
        }
    }
}`), 0o644))
	id := strings.TrimSpace(e.ok("run", "--no-start", p))
	v := e.inspect(id)
	assert.Equal(t, "k8s_nginx-sandbox_default_hdishd83djaidwnduwk28bcsb_1", v.Name)
	assert.Empty(t, v.NetnsPath, "network 2 is NODE: the host's network")
	assert.Equal(t, "30", v.Annotations["io.kubernetes.pod.terminationGracePeriod"])
	e.ok("rm", id)
}

// TestPlanUnprivileged runs plan as nobody: it needs no privilege and
// makes nothing.
func TestPlanUnprivileged(t *testing.T) {
	testutil.RequireRoot(t) // to become nobody
	testutil.RequireBinaries(t, "setpriv")
	// A directory nobody can reach (t.TempDir's parent is private).
	cfgDir, err := os.MkdirTemp("", "podctl-plan-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(cfgDir) })
	require.NoError(t, os.Chmod(cfgDir, 0o755))
	good, err := os.ReadFile("../pods/dns.json")
	require.NoError(t, err)
	goodPath := filepath.Join(cfgDir, "dns.json")
	require.NoError(t, os.WriteFile(goodPath, good, 0o644))
	badPath := filepath.Join(cfgDir, "bad.json")
	require.NoError(t, os.WriteFile(badPath, []byte(`{"metadata":{"name":"x"},"dns_config":{"servers":["1.1.1.1","2.2.2.2","3.3.3.3","4.4.4.4"]},"linux":{"sysctls":{"vm.swappiness":"1"}}}`), 0o644))
	state := filepath.Join(t.TempDir(), "never")
	nobody := func(args ...string) result {
		return testutil.Run(t, exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", podctlBin,
			"--root", state, "--run-root", state + "-run", "--netns-dir", state + "-netns"}, args...)...))
	}
	r := nobody("plan", goodPath)
	require.Equal(t, 0, r.Code, r.Stderr)
	var s struct {
		OCIVersion string `json:"ociVersion"`
		Hostname   string `json:"hostname"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &s))
	assert.Equal(t, "1.0.2", s.OCIVersion)
	assert.Equal(t, "dns-pod", s.Hostname)

	r = nobody("plan", badPath)
	assert.Equal(t, 1, r.Code)
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	fields := make([]string, len(lines))
	for i, l := range lines {
		fields[i], _, _ = strings.Cut(l, ": ")
	}
	assert.ElementsMatch(t, []string{"metadata.namespace", "metadata.uid", "dns_config.servers", `linux.sysctls["vm.swappiness"]`}, fields)
	assert.Equal(t, 1, strings.Count(r.Stderr, "\n"))
	assert.NoDirExists(t, state)
}

// alive reports whether process pid exists and has not exited.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func readSample(t *testing.T, path string) *pod.Config {
	t.Helper()
	cfg, err := pod.Load(path)
	require.NoError(t, err)
	return cfg
}

func labels(c *pod.Config) map[string]string {
	if c.Labels == nil {
		return map[string]string{}
	}
	return c.Labels
}

func sysctls(c *pod.Config) map[string]string {
	if c.Linux == nil {
		return nil
	}
	return c.Linux.Sysctls
}

// TestNetwork runs the port-mapping sample on a test CNI network: inspect
// shows the pod's address, the port mapping is in the nat table, stop
// releases the address.
func TestNetwork(t *testing.T) {
	e := newEnv(t, "runc")
	n := testutil.NewCNINetwork(t, testutil.CNINetworkOptions{Portmap: true})
	e.cniConfDir, e.cniBinDirs = n.ConfDir, n.BinDirs
	id := strings.TrimSpace(e.ok("run", "../pods/portmap.json"))
	v := e.inspect(id)
	e.lc.TrackProcess(v.PausePID)
	e.lc.TrackProcess(v.MonitorPID)
	for _, p := range n.Ports() {
		e.lc.TrackLink(p)
	}
	require.Len(t, v.IPs, 1)
	ip, err := netip.ParseAddr(v.IPs[0])
	require.NoError(t, err)
	assert.True(t, n.Subnet.Contains(ip))
	assert.Equal(t, []string{v.IPs[0]}, n.Allocations())
	require.NoError(t, testutil.Ping(ip, 5*time.Second))
	nat := testutil.NAT(t)
	assert.Contains(t, nat, fmt.Sprintf("--dport 18080 -j DNAT --to-destination %s:80", ip))
	assert.Contains(t, nat, fmt.Sprintf("-d 127.0.0.1/32 -p udp -m udp --dport 18053 -j DNAT --to-destination %s:53", ip))
	assert.Contains(t, e.ok("ls"), v.IPs[0])

	e.ok("stop", id)
	require.NoError(t, testutil.WaitExit(v.MonitorPID))
	assert.Empty(t, n.Allocations(), "stop released the address, as CRI stop does")
	assert.Empty(t, e.inspect(id).IPs)
	assert.Empty(t, n.Rules(t))
	e.ok("rm", id)
	assert.Empty(t, e.lc.Leaked())
}
