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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/netns/cni"
)

// fixture is one test's network and pin dir, under the leak checker.
type fixture struct {
	t    *testing.T
	net  *testutil.CNINetwork
	cni  *cni.Network
	pins string
	lc   *testutil.LeakCheck
}

func newFixture(t *testing.T, o testutil.CNINetworkOptions, mod func(*cni.Options)) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	pins := filepath.Join(root, "pins")
	require.NoError(t, os.Mkdir(pins, 0o755))
	lc := testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}, NetnsDir: pins})
	n := testutil.NewCNINetwork(t, o)
	opts := cni.Options{ConfDir: n.ConfDir, BinDirs: n.BinDirs, CacheDir: n.CacheDir, AddTimeout: 30 * time.Second, DelTimeout: 30 * time.Second}
	if mod != nil {
		mod(&opts)
	}
	c, err := cni.New(opts)
	require.NoError(t, err)
	return &fixture{t: t, net: n, cni: c, pins: pins, lc: lc}
}

func randomID(t *testing.T) string {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// pod makes a pinned netns and the Attachment of a pod in it; the netns is
// removed at the end of the test.
func (f *fixture) pod(name string) (*cni.Attachment, *netns.NetNS) {
	f.t.Helper()
	id := randomID(f.t)
	ns, err := netns.New(f.pins, "pod-"+id[:12])
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = ns.Remove() })
	return &cni.Attachment{SandboxID: id, NetnsPath: ns.Path(), PodName: name, PodNamespace: "default", PodUID: name + "-uid"}, ns
}

// attach prepares and attaches a, and has the leak check watch its host
// veth.
func (f *fixture) attach(a *cni.Attachment) *cni.Result {
	f.t.Helper()
	require.NoError(f.t, f.cni.Prepare(context.Background(), a))
	res, err := f.cni.Attach(context.Background(), a)
	require.NoError(f.t, err)
	for _, ifc := range res.Raw.Interfaces {
		if ifc.Sandbox == "" && ifc.Name != f.net.Name {
			f.lc.TrackLink(ifc.Name)
		}
	}
	return res
}

func TestAttachCheckDetach(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	a, ns := f.pod("web")
	ctx := context.Background()
	res := f.attach(a)
	assert.Equal(t, f.net.Name, a.Network, "Prepare recorded the network")
	assert.Equal(t, "eth0", a.IfName)
	assert.NotEmpty(t, a.Config)
	require.Len(t, res.IPs, 1)
	ip := res.IPs[0]
	assert.True(t, f.net.Subnet.Contains(ip), "%s in %s", ip, f.net.Subnet)
	assert.Equal(t, []string{ip.String()}, f.net.Allocations())

	// Inside the pod: eth0 holds the address, lo is up.
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
	require.NoError(t, f.cni.Detach(ctx, a), "DEL twice")
	assert.Empty(t, f.net.Ports())
	err := f.cni.Check(ctx, a)
	require.ErrorIs(t, err, cni.ErrCNI, "CHECK of a detached pod fails")
}

func TestPortMapping(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true}, nil)
	a, _ := f.pod("web")
	hostPort := 20000 + int32(randomID(t)[0])
	a.PortMappings = []cni.PortMapping{{HostPort: hostPort, ContainerPort: 80, Protocol: "tcp"}}
	res := f.attach(a)
	dnat := fmt.Sprintf("--dport %d -j DNAT --to-destination %s:80", hostPort, res.IPs[0])
	assert.Contains(t, testutil.NAT(t), dnat)
	assert.NotEmpty(t, f.net.Rules(t), "portmap's rules name the network")
	require.NoError(t, f.cni.Detach(context.Background(), a))
	assert.NotContains(t, testutil.NAT(t), dnat)
	assert.Empty(t, f.net.Rules(t))
}

func TestCapabilityArgs(t *testing.T) {
	// A plugin first in the chain that records what it is given.
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	record := filepath.Join(t.TempDir(), "stdin")
	f.net.WritePlugin(t, "recorder", "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && cat > "+record+" || cat >/dev/null\n"+
		"[ \"$CNI_COMMAND\" = VERSION ] && echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}' && exit 0\n"+
		"[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\"}'\nexit 0\n")
	conf := map[string]any{"cniVersion": "1.0.0", "name": f.net.Name, "plugins": []map[string]any{
		{"type": "recorder", "capabilities": map[string]bool{"portMappings": true, "bandwidth": true, "dns": true, "cgroupPath": true}},
		{"type": "bridge", "bridge": f.net.Name, "isGateway": true, "ipam": map[string]any{
			"type": "host-local", "dataDir": f.net.IPAMDir, "ranges": [][]map[string]string{{{"subnet": f.net.Subnet.String()}}}}},
	}}
	f.net.WriteConf(t, "10-"+f.net.Name+".conflist", conf)
	a, _ := f.pod("web")
	a.PortMappings = []cni.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
	a.Annotations = map[string]string{cni.IngressBandwidthAnnotation: "10M", cni.EgressBandwidthAnnotation: "1Mi"}
	a.DNS = &cni.DNS{Servers: []string{"10.96.0.10"}, Searches: []string{"svc.cluster.local"}}
	a.CgroupPath = "/podsmith"
	f.attach(a)
	defer func() { require.NoError(t, f.cni.Detach(context.Background(), a)) }()

	b, err := os.ReadFile(record)
	require.NoError(t, err)
	var got struct {
		RuntimeConfig struct {
			PortMappings []cni.PortMapping `json:"portMappings"`
			Bandwidth    cni.Bandwidth     `json:"bandwidth"`
			DNS          cni.DNS           `json:"dns"`
			CgroupPath   string            `json:"cgroupPath"`
		} `json:"runtimeConfig"`
	}
	require.NoError(t, json.Unmarshal(b, &got))
	rc := got.RuntimeConfig
	assert.Equal(t, a.PortMappings, rc.PortMappings)
	assert.Equal(t, uint64(10_000_000), rc.Bandwidth.IngressRate)
	assert.Equal(t, uint64(1<<20), rc.Bandwidth.EgressRate)
	assert.Equal(t, *a.DNS, rc.DNS)
	assert.Equal(t, "/podsmith", rc.CgroupPath)
}

func TestTwoPodsAndManyCycles(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true}, nil)
	ctx := context.Background()
	a1, _ := f.pod("one")
	a2, _ := f.pod("two")
	r1, r2 := f.attach(a1), f.attach(a2)
	assert.NotEqual(t, r1.IPs[0], r2.IPs[0])
	require.NoError(t, f.cni.Detach(ctx, a1))
	require.NoError(t, f.cni.Detach(ctx, a2))

	for i := range 50 {
		a, ns := f.pod(fmt.Sprintf("cycle-%d", i))
		f.attach(a)
		require.NoError(t, f.cni.Detach(ctx, a))
		require.NoError(t, ns.Remove())
	}
	assert.Empty(t, f.net.Allocations(), "50 cycles leave the IPAM dir empty")
}

func TestConcurrentAttach(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[netip.Addr]bool{}
	pods := make([]*cni.Attachment, 8)
	for i := range pods {
		pods[i], _ = f.pod(fmt.Sprintf("p%d", i))
	}
	for _, a := range pods {
		wg.Go(func() {
			res := f.attach(a)
			mu.Lock()
			assert.False(t, seen[res.IPs[0]], "address %s given twice", res.IPs[0])
			seen[res.IPs[0]] = true
			mu.Unlock()
		})
	}
	wg.Wait()
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
		assert.Empty(t, a.Config)
		_, err = f.cni.Attach(ctx, a)
		require.ErrorAs(t, err, &ce, "Attach prepares first")
		assert.Empty(t, f.net.Allocations())
	})
	t.Run("plugin removed after ADD", func(t *testing.T) {
		f := newFixture(t, testutil.CNINetworkOptions{}, nil)
		f.net.WritePlugin(t, "vanishing", "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n"+
			"ADD) echo '{\"cniVersion\":\"1.0.0\"}';;\n"+
			"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\nesac\nexit 0\n")
		// First in the chain (the bridge makes its own result after it);
		// DEL runs in reverse, the bridge first.
		f.net.WriteConf(t, "10-"+f.net.Name+".conflist", map[string]any{"cniVersion": "1.0.0", "name": f.net.Name, "plugins": []map[string]any{
			{"type": "vanishing"},
			{"type": "bridge", "bridge": f.net.Name, "isGateway": true, "ipam": map[string]any{
				"type": "host-local", "dataDir": f.net.IPAMDir, "ranges": [][]map[string]string{{{"subnet": f.net.Subnet.String()}}}}},
		}})
		a, _ := f.pod("web")
		f.attach(a)
		require.NoError(t, os.Remove(filepath.Join(f.net.PluginDir, "vanishing")))
		// DEL cannot run the missing plugin, but the bridge still gives the
		// address back; the error says what could not be undone.
		err := f.cni.Detach(ctx, a)
		require.ErrorIs(t, err, cni.ErrCNI)
		assert.Contains(t, err.Error(), "vanishing")
		assert.Empty(t, f.net.Allocations())
		assert.Empty(t, f.net.Ports())
	})
	t.Run("plugin fails ADD", func(t *testing.T) {
		f := newFixture(t, testutil.CNINetworkOptions{Extra: []map[string]any{{"type": "failing"}}}, nil)
		f.net.WritePlugin(t, "failing", "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n"+
			"ADD) echo '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"injected ADD failure\"}'; exit 1;;\n"+
			"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\nesac\nexit 0\n")
		a, _ := f.pod("web")
		require.NoError(t, f.cni.Prepare(ctx, a))
		_, err := f.cni.Attach(ctx, a)
		require.ErrorIs(t, err, cni.ErrCNI)
		var pe *types.Error
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, uint(999), pe.Code)
		assert.Equal(t, "injected ADD failure", pe.Msg)
		assert.NotEmpty(t, f.net.Allocations(), "the bridge before it did allocate")
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
		_, err = f.cni.Load()
		require.ErrorAs(t, err, &ce)
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
		f := newFixture(t, testutil.CNINetworkOptions{Extra: []map[string]any{{"type": "sleepy"}}}, func(o *cni.Options) { o.AddTimeout = time.Second })
		f.net.WritePlugin(t, "sleepy", "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n"+
			"ADD) echo $$ > "+pidFile+"; exec sleep 600;;\n"+
			"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\nesac\nexit 0\n")
		a, _ := f.pod("web")
		require.NoError(t, f.cni.Prepare(ctx, a))
		_, err := f.cni.Attach(ctx, a)
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

func TestDetachAfterThePinIsGone(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{Portmap: true}, nil)
	a, ns := f.pod("web")
	a.PortMappings = []cni.PortMapping{{HostPort: 21000 + int32(randomID(t)[1]), ContainerPort: 80, Protocol: "tcp"}}
	res := f.attach(a)
	var hostVeth string
	for _, ifc := range res.Raw.Interfaces {
		if ifc.Sandbox == "" && ifc.Name != f.net.Name {
			hostVeth = ifc.Name
		}
	}
	require.NotEmpty(t, hostVeth)
	// As after a reboot: the pin is gone, nothing holds the namespace.
	require.NoError(t, ns.Remove())
	require.NoError(t, f.cni.Detach(context.Background(), a))
	assert.Empty(t, f.net.Allocations(), "the address is released all the same")
	assert.Empty(t, f.net.Rules(t))
	require.NoError(t, testutil.WaitLinkGone(hostVeth, 30*time.Second), "the kernel removes the veth with the namespace")
}

func TestDetachUsesTheRecordedConfig(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	a, _ := f.pod("web")
	f.attach(a)
	// The conf dir changes under the running pod (a CNI upgrade, an
	// operator): DEL still uses what ADD used.
	require.NoError(t, os.Remove(filepath.Join(f.net.ConfDir, "10-"+f.net.Name+".conflist")))
	f.net.WriteConf(t, "10-other.conflist", map[string]any{"cniVersion": "1.0.0", "name": "other", "plugins": []map[string]any{{"type": "podsmith-no-such-plugin"}}})
	require.NoError(t, f.cni.Detach(context.Background(), a))
	assert.Empty(t, f.net.Allocations())
}

func TestGC(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	ctx := context.Background()
	keep, _ := f.pod("keep")
	lost, _ := f.pod("lost")
	rk, rl := f.attach(keep), f.attach(lost)
	require.Len(t, f.net.Allocations(), 2)
	// Only "keep" is known: GC deletes "lost" from its cached attachment.
	require.NoError(t, f.cni.GC(ctx, []string{keep.SandboxID}))
	assert.Equal(t, []string{rk.IPs[0].String()}, f.net.Allocations())
	assert.NotContains(t, f.net.Allocations(), rl.IPs[0].String())
	require.NoError(t, f.cni.Detach(ctx, keep))
	require.NoError(t, f.cni.Detach(ctx, lost), "DEL after GC is fine")
	assert.Empty(t, f.net.Allocations())
}

func TestAttachWithoutPrepare(t *testing.T) {
	f := newFixture(t, testutil.CNINetworkOptions{}, nil)
	a, _ := f.pod("web")
	res, err := f.cni.Attach(context.Background(), a)
	require.NoError(t, err)
	for _, ifc := range res.Raw.Interfaces {
		if ifc.Sandbox == "" && ifc.Name != f.net.Name {
			f.lc.TrackLink(ifc.Name)
		}
	}
	assert.NotEmpty(t, a.Config, "prepared on the way")
	require.NoError(t, f.cni.Detach(context.Background(), a))
}
