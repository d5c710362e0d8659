package cni_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
)

// fixture is one test's network, pin dir and cache dirs, under the leak
// checker.
type fixture struct {
	t    *testing.T
	net  *testutil.CNINetwork
	cni  *cni.Network
	opts cni.Options
	root string // the leak checker's root
	pins string
	// dir is the attachments' Dir, as a Builder's StateDir/network: the
	// default cache dir.
	dir string
	lc  *testutil.LeakCheck
}

func newFixture(t *testing.T, o testutil.CNINetworkOptions, mod func(*cni.Options)) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	pins := filepath.Join(root, "pins")
	require.NoError(t, os.Mkdir(pins, 0o755))
	lc := testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}, NetnsDir: pins})
	n := testutil.NewCNINetwork(t, o)
	opts := cni.Options{ConfDir: n.ConfDir, BinDirs: n.BinDirs, AddTimeout: 30 * time.Second, DelTimeout: 30 * time.Second}
	if mod != nil {
		mod(&opts)
	}
	c, err := cni.New(opts)
	require.NoError(t, err)
	f := &fixture{t: t, net: n, cni: c, opts: opts, root: root, pins: pins, dir: filepath.Join(root, "network"), lc: lc}
	// Before the network's own cleanup (which checks the bridge and the
	// IPAM dir) and the leak check: every cache dir the test made under
	// root must be empty by now (each ADD was undone by a DEL, or
	// collected), then it goes.
	t.Cleanup(func() {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.Name() == "pins" {
				continue
			}
			d := filepath.Join(root, e.Name())
			assert.Empty(t, cni.CacheEntries(t, d), "libcni's cache in %s", d)
			require.NoError(t, os.RemoveAll(d))
		}
	})
	return f
}

func randomID(t *testing.T) string {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// pod makes a pinned netns and the attachment of a pod in it, with the
// fixture's Dir; the netns is removed at the end of the test.
func (f *fixture) pod(name string) (*sandbox.NetworkAttachment, *netns.NetNS) {
	f.t.Helper()
	id := randomID(f.t)
	ns, err := netns.New(f.pins, "pod-"+id[:12])
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = ns.Remove() })
	return &sandbox.NetworkAttachment{
		SandboxID: id, NetnsPath: ns.Path(), Dir: f.dir,
		Pod: pod.Metadata{Name: name, Namespace: "default", UID: name + "-uid"},
	}, ns
}

// attach prepares and attaches a, and has the leak check watch the
// bridge's veths.
func (f *fixture) attach(a *sandbox.NetworkAttachment) []netip.Addr {
	f.t.Helper()
	require.NoError(f.t, f.cni.Prepare(context.Background(), a))
	return f.attachPrepared(f.cni, a)
}

func (f *fixture) attachPrepared(n *cni.Network, a *sandbox.NetworkAttachment) []netip.Addr {
	f.t.Helper()
	ips, err := n.Attach(context.Background(), a)
	require.NoError(f.t, err)
	f.trackPorts()
	return ips
}

// trackPorts has the leak check watch every veth on the test's bridge.
func (f *fixture) trackPorts() []string {
	ports := f.net.Ports()
	for _, p := range ports {
		f.lc.TrackLink(p)
	}
	return ports
}

// recordedState decodes what Prepare recorded.
func recordedState(t *testing.T, a *sandbox.NetworkAttachment) (network, ifName string, conf map[string]any) {
	t.Helper()
	var st struct {
		Network string         `json:"network"`
		IfName  string         `json:"if_name"`
		Config  map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal(a.State, &st))
	return st.Network, st.IfName, st.Config
}

// journaled is a as the sandbox journal gives it back: marshalled,
// unmarshalled.
func journaled(t *testing.T, a *sandbox.NetworkAttachment) *sandbox.NetworkAttachment {
	t.Helper()
	b, err := json.Marshal(a)
	require.NoError(t, err)
	var c sandbox.NetworkAttachment
	require.NoError(t, json.Unmarshal(b, &c))
	return &c
}

// passPlugin is a chained plugin script: ADD passes its prevResult on
// (libcni's stdin is compact JSON with sorted keys, so prevResult is
// followed by runtimeConfig, if any, then type); DEL runs onDel, with the
// plugin's stdin in $in.
func passPlugin(onDel string) string {
	return "#!/bin/sh\nin=$(cat)\ncase \"$CNI_COMMAND\" in\n" +
		"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}';;\n" +
		"ADD) r=${in#*'\"prevResult\":'}; r=${r%%',\"runtimeConfig\":'*}; r=${r%',\"type\":'*}; printf '%s' \"$r\";;\n" +
		"DEL) " + onDel + ";;\nesac\nexit 0\n"
}

func TestAttachCheckDetach(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	a, ns := f.pod("web")
	ctx := context.Background()
	require.NoError(t, f.cni.Prepare(ctx, a))
	network, ifName, conf := recordedState(t, a)
	assert.Equal(t, f.net.Name, network, "Prepare recorded the network")
	assert.Equal(t, "eth0", ifName)
	assert.Equal(t, f.net.Name, conf["name"], "and the whole conflist")
	assert.Len(t, conf["plugins"], 1)
	ips := f.attachPrepared(f.cni, a)
	require.Len(t, ips, 1)
	ip := ips[0]
	assert.True(t, f.net.Subnet.Contains(ip), "%s in %s", ip, f.net.Subnet)
	assert.Equal(t, []string{ip.String()}, f.net.Allocations())
	assert.Equal(t, []string{f.net.Name + "-" + a.SandboxID + "-eth0"}, cni.CacheEntries(t, a.Dir), "libcni's cache is in the attachment's Dir")

	// Inside the pod: eth0 holds the address.
	var addrs []string
	require.NoError(t, ns.Do(func() error {
		eth0, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		as, err := eth0.Addrs()
		for _, a := range as {
			addrs = append(addrs, a.String())
		}
		return err
	}))
	assert.Contains(t, addrs, ip.String()+"/24")
	// The host reaches the pod across the test's bridge.
	require.NoError(t, testutil.Ping(ip, 5*time.Second))
	require.NoError(t, f.cni.Check(ctx, a))

	require.NoError(t, f.cni.Detach(ctx, a))
	assert.Empty(t, f.net.Allocations(), "DEL released the address")
	assert.Empty(t, cni.CacheEntries(t, a.Dir), "and libcni dropped its cache entry")
	assert.Empty(t, f.net.Ports())
	require.NoError(t, f.cni.Detach(ctx, a), "DEL twice")
	err := f.cni.Check(ctx, a)
	require.ErrorIs(t, err, cni.ErrCNI, "CHECK of a detached pod fails")
	var ce *cni.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "CHECK", ce.Op)
}

func TestPortMapping(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true}, nil)
	a, _ := f.pod("web")
	hostPort := 20000 + int32(randomID(t)[0])
	a.PortMappings = []pod.PortMapping{
		{HostPort: hostPort, ContainerPort: 80, Protocol: pod.ProtocolTCP},
		{HostPort: hostPort, ContainerPort: 53, Protocol: pod.ProtocolUDP},
	}
	ip := f.attach(a)[0]
	tcp := fmt.Sprintf("-p tcp -m tcp --dport %d -j DNAT --to-destination %s:80", hostPort, ip)
	udp := fmt.Sprintf("-p udp -m udp --dport %d -j DNAT --to-destination %s:53", hostPort, ip)
	nat := testutil.NAT(t)
	assert.Contains(t, nat, tcp)
	assert.Contains(t, nat, udp, "a UDP mapping is a UDP rule")
	assert.NotEmpty(t, f.net.Rules(t), "portmap's rules name the network")
	require.NoError(t, f.cni.Detach(context.Background(), a))
	nat = testutil.NAT(t)
	assert.NotContains(t, nat, tcp)
	assert.NotContains(t, nat, udp)
	assert.Empty(t, f.net.Rules(t))
}

func TestTwoPodsAndManyCycles(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true}, nil)
	ctx := context.Background()
	a1, _ := f.pod("one")
	a2, _ := f.pod("two")
	r1, r2 := f.attach(a1), f.attach(a2)
	assert.NotEqual(t, r1[0], r2[0])
	assert.Len(t, cni.CacheEntries(t, f.dir), 2)
	require.NoError(t, f.cni.Detach(ctx, a1))
	require.NoError(t, f.cni.Detach(ctx, a2))

	for i := range 50 {
		a, ns := f.pod(fmt.Sprintf("cycle-%d", i))
		f.attach(a)
		require.NoError(t, f.cni.Detach(ctx, a))
		require.NoError(t, ns.Remove())
	}
	assert.Empty(t, f.net.Allocations(), "50 cycles leave the IPAM dir empty")
	assert.Empty(t, cni.CacheEntries(t, f.dir), "and the cache")
}

func TestConcurrentAttach(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[netip.Addr]bool{}
	pods := make([]*sandbox.NetworkAttachment, 8)
	for i := range pods {
		pods[i], _ = f.pod(fmt.Sprintf("p%d", i))
	}
	for _, a := range pods {
		wg.Go(func() {
			if !assert.NoError(t, f.cni.Prepare(ctx, a)) {
				return
			}
			ips, err := f.cni.Attach(ctx, a)
			if !assert.NoError(t, err) {
				return
			}
			mu.Lock()
			assert.False(t, seen[ips[0]], "address %s given twice", ips[0])
			seen[ips[0]] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Len(t, f.trackPorts(), len(pods))
	for _, a := range pods {
		wg.Go(func() { assert.NoError(t, f.cni.Detach(ctx, a)) })
	}
	wg.Wait()
	assert.Empty(t, f.net.Allocations())
}

func TestFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("missing plugin", func(t *testing.T) {
		f := newFixture(t, testutil.CNINetworkOptions{Extra: []map[string]any{{"type": "podsmith-no-such-plugin"}}}, nil)
		a, _ := f.pod("web")
		// Refused before any plugin runs: nothing to undo.
		err := f.cni.Prepare(ctx, a)
		var ce *cni.ConfigError
		require.ErrorAs(t, err, &ce)
		require.ErrorIs(t, err, cni.ErrCNI)
		assert.Contains(t, err.Error(), `plugin "podsmith-no-such-plugin" is not installed`)
		assert.Empty(t, a.State)
		_, err = f.cni.Attach(ctx, a)
		require.ErrorAs(t, err, &ce, "Attach needs a prepared attachment")
		assert.Empty(t, f.net.Allocations())
	})
	t.Run("plugin removed after ADD", func(t *testing.T) {
		// Last in the chain, so the chain's DEL fails first, at it: only
		// the fallback gives the address back.
		f := newFixture(t, testutil.CNINetworkOptions{Portmap: true, Extra: []map[string]any{{"type": "vanishing"}}}, nil)
		f.net.WritePlugin(t, "vanishing", passPlugin("true"))
		a, _ := f.pod("web")
		a.PortMappings = []pod.PortMapping{{HostPort: 22000 + int32(randomID(t)[0]), ContainerPort: 80}}
		f.attach(a)
		require.NoError(t, os.Remove(filepath.Join(f.net.PluginDir, "vanishing")))
		err := f.cni.Detach(ctx, a)
		require.ErrorIs(t, err, cni.ErrCNI)
		assert.Contains(t, err.Error(), "plugin vanishing: ", "the error says what could not be undone")
		assert.Empty(t, f.net.Allocations(), "the bridge still gave the address back")
		assert.Empty(t, f.net.Ports())
		assert.Empty(t, f.net.Rules(t), "and portmap its rules")
		assert.Len(t, cni.CacheEntries(t, f.dir), 1, "kept for the retry")
		// The plugin is back: the retry succeeds, and drops the cache entry.
		f.net.WritePlugin(t, "vanishing", passPlugin("true"))
		require.NoError(t, f.cni.Detach(ctx, a))
		assert.Empty(t, cni.CacheEntries(t, f.dir))
	})
	t.Run("plugin fails ADD", func(t *testing.T) {
		f := newFixture(t, testutil.CNINetworkOptions{Extra: []map[string]any{{"type": "failing"}}}, nil)
		f.net.WritePlugin(t, "failing", "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n"+
			"ADD) echo '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"injected ADD failure\"}'; exit 1;;\n"+
			"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\nesac\nexit 0\n")
		a, _ := f.pod("web")
		require.NoError(t, f.cni.Prepare(ctx, a))
		_, err := f.cni.Attach(ctx, a)
		f.trackPorts()
		require.ErrorIs(t, err, cni.ErrCNI)
		var pe *types.Error
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, uint(999), pe.Code)
		assert.Equal(t, "injected ADD failure", pe.Msg)
		assert.NotEmpty(t, f.net.Allocations(), "the bridge before it did allocate")
		assert.Empty(t, cni.CacheEntries(t, f.dir), "libcni caches only a whole chain's ADD")
		require.NoError(t, f.cni.Detach(ctx, a))
		assert.Empty(t, f.net.Allocations())
		assert.Empty(t, f.net.Ports())
	})
	t.Run("result without an address", func(t *testing.T) {
		// A chained plugin that drops its prevResult: the ADD "succeeds"
		// with no address on eth0, which is an error.
		f := newFixture(t, testutil.CNINetworkOptions{Extra: []map[string]any{{"type": "forgetful"}}}, nil)
		f.net.WritePlugin(t, "forgetful", "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n"+
			"ADD) echo '{\"cniVersion\":\"1.0.0\"}';;\n"+
			"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\nesac\nexit 0\n")
		a, _ := f.pod("web")
		require.NoError(t, f.cni.Prepare(ctx, a))
		_, err := f.cni.Attach(ctx, a)
		f.trackPorts()
		require.ErrorIs(t, err, cni.ErrNoIP)
		require.NoError(t, f.cni.Detach(ctx, a))
		assert.Empty(t, f.net.Allocations())
		assert.Empty(t, f.net.Ports())
	})
	t.Run("unparseable conflist", func(t *testing.T) {
		f := newFixture(t, testutil.CNINetworkOptions{}, nil)
		bad := f.net.WriteConf(t, "00-bad.conflist", `{"cniVersion": "1.0.0", "name": "x", "plugins": [`)
		a, _ := f.pod("web")
		err := f.cni.Prepare(ctx, a)
		var ce *cni.ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, bad, ce.File)
		require.ErrorIs(t, err, cni.ErrCNI)
		err = f.cni.GC(ctx, f.dir, nil)
		require.ErrorAs(t, err, &ce, "GC loads the configuration too")
		assert.Equal(t, bad, ce.File)
	})
	t.Run("empty conf dir", func(t *testing.T) {
		f := newFixture(t, testutil.CNINetworkOptions{}, func(o *cni.Options) { o.ConfDir = filepath.Join(t.TempDir(), "empty") })
		a, _ := f.pod("web")
		err := f.cni.Prepare(ctx, a)
		require.ErrorIs(t, err, cni.ErrNoConfig)
	})
	t.Run("pinned network not there", func(t *testing.T) {
		f := newFixture(t, testutil.CNINetworkOptions{}, func(o *cni.Options) { o.NetworkName = "podsmith-absent" })
		a, _ := f.pod("web")
		err := f.cni.Prepare(ctx, a)
		require.ErrorIs(t, err, cni.ErrNoConfig)
		assert.Contains(t, err.Error(), "podsmith-absent")
	})
	t.Run("timeout", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "pid")
		f := newFixture(t, testutil.CNINetworkOptions{Extra: []map[string]any{{"type": "sleepy"}}}, func(o *cni.Options) {
			o.AddTimeout = 3 * time.Second // the bridge plugin before sleepy must finish on a loaded machine
		})
		f.net.WritePlugin(t, "sleepy", "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n"+
			"ADD) echo $$ > "+pidFile+"; exec sleep 600;;\n"+
			"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\nesac\nexit 0\n")
		a, _ := f.pod("web")
		require.NoError(t, f.cni.Prepare(ctx, a))
		_, err := f.cni.Attach(ctx, a)
		f.trackPorts()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, cni.ErrCNI)
		b, rerr := os.ReadFile(pidFile)
		require.NoError(t, rerr)
		pid, rerr := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, rerr)
		f.lc.TrackProcess(pid) // killed at the deadline and reaped
		require.NoError(t, f.cni.Detach(ctx, a))
		assert.Empty(t, f.net.Allocations())
	})
}

// A caller that gives up mid-ADD (at its deadline, or by dying) leaves
// what the plugins started running: here the bridge plugin's IPAM plugin,
// held at a gate until after the DEL. Detach must stop it before its DEL,
// or the address it allocates after that DEL is never released.
func TestDetachStopsWhatAnADDLeftRunning(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{IPAM: "gated"}, nil)
	gate := f.net.WriteGatedIPAM(t)
	a, _ := f.pod("web")
	require.NoError(t, f.cni.Prepare(context.Background(), a))
	ctx, cancel := context.WithCancel(context.Background())
	attached := make(chan error, 1)
	go func() {
		_, err := f.cni.Attach(ctx, a)
		attached <- err
	}()
	pid := gate.Started(t)
	cancel() // the bridge plugin is killed, not the IPAM plugin it started
	require.ErrorIs(t, <-attached, context.Canceled)
	f.trackPorts()
	require.NoError(t, f.cni.Detach(context.Background(), a))

	assert.False(t, gate.Open(t, pid), "the IPAM plugin (PID %d) was still waiting after Detach", pid)
	assert.Empty(t, f.net.Allocations(), "an address taken after the DEL")
}

func TestDetachAfterThePinIsGone(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true}, nil)
	a, ns := f.pod("web")
	a.PortMappings = []pod.PortMapping{{HostPort: 21000 + int32(randomID(t)[1]), ContainerPort: 80, Protocol: pod.ProtocolTCP}}
	f.attach(a)
	ports := f.net.Ports()
	require.Len(t, ports, 1, "the pod's host veth")
	// As after a reboot: the pin is gone, nothing holds the namespace.
	require.NoError(t, ns.Remove())
	require.NoError(t, f.cni.Detach(context.Background(), a))
	assert.Empty(t, f.net.Allocations(), "the address is released all the same")
	assert.Empty(t, f.net.Rules(t))
	assert.Empty(t, cni.CacheEntries(t, f.dir))
	require.NoError(t, testutil.WaitLinkGone(ports[0], 30*time.Second), "the kernel removes the veth with the namespace")
}

// The conf dir changes under a running pod (a CNI upgrade, an operator):
// DEL still uses what ADD used, from the journal's copy of the attachment.
func TestDetachUsesTheRecordedConfig(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true}, nil)
	a, _ := f.pod("web")
	a.PortMappings = []pod.PortMapping{{HostPort: 23000 + int32(randomID(t)[2]), ContainerPort: 80, Protocol: pod.ProtocolTCP}}
	f.attach(a)
	rec := journaled(t, a)
	require.NoError(t, os.Remove(filepath.Join(f.net.ConfDir, "10-"+f.net.Name+".conflist")))
	f.net.WriteConf(t, "10-other.conflist", map[string]any{"cniVersion": "1.0.0", "name": "other", "plugins": []map[string]any{{"type": "podsmith-no-such-plugin"}}})
	// A new pod would get the new network (here, one that cannot work).
	b, _ := f.pod("next")
	require.ErrorIs(t, f.cni.Prepare(context.Background(), b), cni.ErrCNI)
	require.NoError(t, f.cni.Detach(context.Background(), rec))
	assert.Empty(t, f.net.Allocations())
	assert.Empty(t, f.net.Rules(t))
	assert.Empty(t, cni.CacheEntries(t, f.dir))
}

// The attachment goes through JSON between Prepare and Attach (the
// journal records it before the ADD), and again before a Detach (a Stop,
// a Recover): State and the pod's port mappings survive.
func TestStateRoundTrip(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true}, nil)
	ctx := context.Background()
	a, _ := f.pod("web")
	hostPort := 24000 + int32(randomID(t)[3])
	a.PortMappings = []pod.PortMapping{{HostPort: hostPort, ContainerPort: 53, Protocol: pod.ProtocolUDP}}
	a.DNS = &pod.DNSConfig{Servers: []string{"10.96.0.10"}}
	a.Annotations = map[string]string{"x": "y"}
	require.NoError(t, f.cni.Prepare(ctx, a))
	rec := journaled(t, a)
	assert.JSONEq(t, string(a.State), string(rec.State))
	want := *a
	want.State = rec.State
	assert.Equal(t, &want, rec, "the whole attachment survives JSON")

	// Another Network of the same options (another process) attaches the
	// copy, and detaches a copy of its own.
	other, err := cni.New(f.opts)
	require.NoError(t, err)
	ip := f.attachPrepared(other, journaled(t, rec))[0]
	assert.Contains(t, testutil.NAT(t), fmt.Sprintf("-p udp -m udp --dport %d -j DNAT --to-destination %s:53", hostPort, ip))
	require.NoError(t, f.cni.Detach(ctx, journaled(t, rec)))
	assert.Empty(t, f.net.Allocations())
	assert.Empty(t, f.net.Rules(t))
	assert.Empty(t, cni.CacheEntries(t, f.dir))
}

func TestGC(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	ctx := context.Background()
	keep, _ := f.pod("keep")
	lost, _ := f.pod("lost")
	rk, rl := f.attach(keep), f.attach(lost)
	require.Len(t, f.net.Allocations(), 2)
	// Only "keep" is known: GC deletes "lost" from its cached attachment.
	require.NoError(t, f.cni.GC(ctx, f.dir, []string{keep.SandboxID}))
	assert.Equal(t, []string{rk[0].String()}, f.net.Allocations())
	assert.NotContains(t, f.net.Allocations(), rl[0].String())
	assert.Equal(t, []string{f.net.Name + "-" + keep.SandboxID + "-eth0"}, cni.CacheEntries(t, f.dir))
	require.NoError(t, f.cni.Check(ctx, keep), "the kept pod is untouched")
	require.NoError(t, f.cni.Detach(ctx, keep))
	require.NoError(t, f.cni.Detach(ctx, lost), "DEL after GC is fine")
	assert.Empty(t, f.net.Allocations())
	require.NoError(t, f.cni.GC(ctx, f.dir, nil), "nothing left to collect")
}

// libcni's cache is the attachment's Dir (one per Builder), unless
// Options.CacheDir names one: two Builders on one network never collect
// each other's pods.
func TestCacheDir(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	ctx := context.Background()
	mine, _ := f.pod("mine")
	theirs, _ := f.pod("theirs")
	theirs.Dir = filepath.Join(f.root, "other-builder")
	rm, rt := f.attach(mine), f.attach(theirs)
	assert.Equal(t, []string{f.net.Name + "-" + mine.SandboxID + "-eth0"}, cni.CacheEntries(t, f.dir))
	assert.Equal(t, []string{f.net.Name + "-" + theirs.SandboxID + "-eth0"}, cni.CacheEntries(t, theirs.Dir))
	// This Builder knows no sandbox: it collects its own pod only.
	require.NoError(t, f.cni.GC(ctx, f.dir, nil))
	assert.Equal(t, []string{rt[0].String()}, f.net.Allocations())
	assert.NotContains(t, f.net.Allocations(), rm[0].String())
	require.NoError(t, f.cni.Check(ctx, theirs))
	require.NoError(t, f.cni.Detach(ctx, theirs))
	require.NoError(t, f.cni.Detach(ctx, mine))

	// Options.CacheDir wins over the attachment's Dir.
	o := f.opts
	o.CacheDir = filepath.Join(f.root, "cache")
	n, err := cni.New(o)
	require.NoError(t, err)
	a, _ := f.pod("pinned-cache")
	a.Dir = filepath.Join(f.root, "unused")
	require.NoError(t, n.Prepare(ctx, a))
	f.attachPrepared(n, a)
	assert.Equal(t, []string{f.net.Name + "-" + a.SandboxID + "-eth0"}, cni.CacheEntries(t, o.CacheDir))
	assert.NoDirExists(t, a.Dir)
	require.NoError(t, n.GC(ctx, "", []string{a.SandboxID}), "GC needs no dir either")
	require.NoError(t, n.Check(ctx, a))
	require.NoError(t, n.Detach(ctx, a))
	assert.Empty(t, cni.CacheEntries(t, o.CacheDir))
	assert.Empty(t, f.net.Allocations())
}

// When the chain's DEL fails at one plugin, every plugin is DEL'd on its
// own, each with the ADD's result as prevResult: the address, the port
// mapping and the veth are released all the same, and the error names the
// plugin that failed. libcni's cache entry stays until a GC.
func TestDelFallback(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "recorded")
	broken := filepath.Join(t.TempDir(), "faildel-is-broken")
	require.NoError(t, os.WriteFile(broken, nil, 0o644))
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true, Extra: []map[string]any{
		{"type": "recorder", "capabilities": map[string]bool{"portMappings": true}},
		{"type": "faildel"},
	}}, nil)
	f.net.WritePlugin(t, "recorder", passPlugin(`printf '%s' "$in" > `+rec))
	f.net.WritePlugin(t, "faildel", passPlugin(`[ -e `+broken+` ] && echo '{"cniVersion":"1.0.0","code":11,"msg":"faildel cannot DEL"}' && exit 1; true`))
	ctx := context.Background()
	a, _ := f.pod("web")
	hostPort := 25000 + int32(randomID(t)[4])
	a.PortMappings = []pod.PortMapping{{HostPort: hostPort, ContainerPort: 80, Protocol: pod.ProtocolTCP}}
	ip := f.attach(a)[0]
	require.Len(t, f.net.Ports(), 1)
	dnat := fmt.Sprintf("--dport %d -j DNAT --to-destination %s:80", hostPort, ip)
	require.Contains(t, testutil.NAT(t), dnat)

	err := f.cni.Detach(ctx, a)
	require.ErrorIs(t, err, cni.ErrCNI)
	var ce *cni.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "DEL", ce.Op)
	assert.Equal(t, a.SandboxID, ce.SandboxID)
	var pe *types.Error
	require.ErrorAs(t, err, &pe, "the plugin's own error")
	assert.Equal(t, uint(11), pe.Code)
	assert.Contains(t, err.Error(), "plugin faildel: ")
	assert.Contains(t, err.Error(), "faildel cannot DEL")
	for _, p := range []string{"recorder", "portmap", "bridge"} {
		assert.NotContains(t, err.Error(), "plugin "+p+":", "only faildel failed")
	}
	assert.Empty(t, f.net.Allocations(), "the bridge released the address")
	assert.Empty(t, f.net.Ports(), "and the veth")
	assert.NotContains(t, testutil.NAT(t), dnat, "portmap its DNAT")
	assert.Empty(t, f.net.Rules(t))

	// The recorder (DEL'd by the fallback alone: faildel's DEL runs first
	// in the chain) got what libcni would give it.
	b, err := os.ReadFile(rec)
	require.NoError(t, err)
	var got struct {
		Name          string           `json:"name"`
		CNIVersion    string           `json:"cniVersion"`
		PrevResult    *types100.Result `json:"prevResult"`
		RuntimeConfig struct {
			PortMappings []map[string]any `json:"portMappings"`
		} `json:"runtimeConfig"`
	}
	require.NoError(t, json.Unmarshal(b, &got), string(b))
	assert.Equal(t, f.net.Name, got.Name)
	assert.Equal(t, "1.0.0", got.CNIVersion)
	require.NotNil(t, got.PrevResult, "the ADD's result as prevResult")
	var prevIPs []string
	for _, ipc := range got.PrevResult.IPs {
		prevIPs = append(prevIPs, ipc.Address.IP.String())
	}
	assert.Contains(t, prevIPs, ip.String())
	assert.True(t, slices.ContainsFunc(got.PrevResult.Interfaces, func(i *types100.Interface) bool { return i.Name == "eth0" && i.Sandbox == a.NetnsPath }))
	require.Len(t, got.RuntimeConfig.PortMappings, 1)
	assert.EqualValues(t, hostPort, got.RuntimeConfig.PortMappings[0]["hostPort"])
	assert.Equal(t, "tcp", got.RuntimeConfig.PortMappings[0]["protocol"])

	// The cache entry stays: a GC collects it once faildel's DEL works.
	assert.Len(t, cni.CacheEntries(t, f.dir), 1)
	require.Error(t, f.cni.GC(ctx, f.dir, nil), "faildel still fails")
	assert.Len(t, cni.CacheEntries(t, f.dir), 1)
	require.NoError(t, os.Remove(broken))
	require.NoError(t, f.cni.GC(ctx, f.dir, nil))
	assert.Empty(t, cni.CacheEntries(t, f.dir))
	assert.Empty(t, f.net.Allocations())
}
