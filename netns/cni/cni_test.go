package cni

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/owndir"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
)

func TestBandwidthFromAnnotations(t *testing.T) {
	bw, err := BandwidthFromAnnotations(nil)
	require.NoError(t, err)
	assert.Nil(t, bw)
	bw, err = BandwidthFromAnnotations(map[string]string{"other": "x"})
	require.NoError(t, err)
	assert.Nil(t, bw)

	for v, want := range map[string]uint64{
		"1k": 1000, "10M": 10_000_000, "1.5M": 1_500_000, "1Mi": 1 << 20, "2Gi": 2 << 30,
		"1000": 1000, "0.5G": 500_000_000, "1P": 1e15, "1Ki": 1024,
	} {
		bw, err := BandwidthFromAnnotations(map[string]string{IngressBandwidthAnnotation: v, EgressBandwidthAnnotation: v})
		require.NoError(t, err, v)
		assert.Equal(t, &Bandwidth{IngressRate: want, IngressBurst: math.MaxUint32, EgressRate: want, EgressBurst: math.MaxUint32}, bw, v)
	}
	bw, err = BandwidthFromAnnotations(map[string]string{EgressBandwidthAnnotation: "1M"})
	require.NoError(t, err)
	assert.Zero(t, bw.IngressRate)
	assert.Equal(t, uint64(1e6), bw.EgressRate)
	bw, err = BandwidthFromAnnotations(map[string]string{EgressBandwidthAnnotation: "1e6"})
	require.NoError(t, err, "Kubernetes' exponent notation")
	assert.Equal(t, uint64(1e6), bw.EgressRate)

	for v, reason := range map[string]string{
		"": "not a quantity", "abc": "not a quantity", "-1M": "not a quantity",
		"1..5M": "not a quantity", "1 M": "not a quantity", "M": "not a quantity", "10X": "not a quantity",
		"999": "unreasonably small", "0.9k": "unreasonably small", "0": "unreasonably small",
		"2P": "unreasonably large", "1E": "unreasonably large",
	} {
		_, err := BandwidthFromAnnotations(map[string]string{IngressBandwidthAnnotation: v})
		var be *BandwidthError
		require.True(t, errors.As(err, &be), "%q: %v", v, err)
		assert.Equal(t, IngressBandwidthAnnotation, be.Annotation)
		assert.Contains(t, be.Reason, reason, v)
		assert.ErrorIs(t, err, ErrCNI)
	}
}

func FuzzBandwidth(f *testing.F) {
	for _, s := range []string{"1M", "1.5Gi", "999", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bw, err := BandwidthFromAnnotations(map[string]string{IngressBandwidthAnnotation: s})
		if err != nil {
			var be *BandwidthError
			if !errors.As(err, &be) {
				t.Fatalf("error of the wrong type: %v", err)
			}
			return
		}
		if bw.IngressRate < minBandwidth || bw.IngressRate > maxBandwidth {
			t.Fatalf("%q accepted as %d, out of bounds", s, bw.IngressRate)
		}
	})
}

func TestNewDefaultsAndRefusals(t *testing.T) {
	n, err := New(Options{})
	require.NoError(t, err)
	o := n.Options()
	assert.Equal(t, DefaultConfDir, o.ConfDir)
	assert.Equal(t, DefaultBinDirs, o.BinDirs)
	assert.Empty(t, o.CacheDir, "no package default: each attachment's Dir")
	assert.Equal(t, "eth0", o.IfName)
	assert.Equal(t, DefaultAddTimeout, o.AddTimeout)
	assert.Equal(t, DefaultDelTimeout, o.DelTimeout)
	assert.NotNil(t, o.Exec, "made now: libcni would make it lazily, racing")

	for name, o := range map[string]Options{
		"relative conf dir":  {ConfDir: "net.d"},
		"relative bin dir":   {BinDirs: []string{"bin"}},
		"relative cache dir": {CacheDir: "cache"},
		"bad ifname":         {IfName: "a/b"},
		"long ifname":        {IfName: "a-name-way-too-long-for-linux"},
	} {
		_, err := New(o)
		var ce *ConfigError
		require.True(t, errors.As(err, &ce), name)
		assert.ErrorIs(t, err, ErrCNI)
	}
}

// recorded decodes what Prepare recorded in a.State.
func recorded(t *testing.T, a *sandbox.NetworkAttachment) (state, *libcni.NetworkConfigList) {
	t.Helper()
	var st state
	require.NoError(t, json.Unmarshal(a.State, &st))
	list, err := libcni.ConfListFromBytes(st.Config)
	require.NoError(t, err)
	return st, list
}

// fakeBins makes a bin dir holding (empty) plugins of these names: enough
// for Prepare, which only checks that they are installed.
func fakeBins(t *testing.T, names ...string) string {
	t.Helper()
	bin := t.TempDir()
	for _, name := range names {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), nil, 0o755))
	}
	return bin
}

func TestPrepareLoadsTheFirstFile(t *testing.T) {
	dir := t.TempDir()
	bin := fakeBins(t, "bridge", "ptp")
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	const b = `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge","bridge":"cni-b","extra":{"kept":true}}]}`
	write("20-b.conflist", b)
	write("10-a.conf", `{"cniVersion":"1.0.0","name":"a","type":"bridge"}`)
	write("99-z.json", `{"cniVersion":"1.0.0","name":"z","type":"ptp"}`)
	write("notes.txt", "not a config")
	prepare := func(o Options) (*sandbox.NetworkAttachment, error) {
		o.ConfDir, o.BinDirs = dir, []string{bin}
		n, err := New(o)
		require.NoError(t, err)
		a := &sandbox.NetworkAttachment{SandboxID: "x", Dir: filepath.Join(t.TempDir(), "network")}
		return a, n.Prepare(context.Background(), a)
	}

	a, err := prepare(Options{})
	require.NoError(t, err)
	st, list := recorded(t, a)
	assert.Equal(t, "a", st.Network, "the lexically first file")
	assert.Equal(t, "eth0", st.IfName)
	assert.Equal(t, "a", list.Name)
	require.Len(t, list.Plugins, 1, "a .conf wrapped into a list")
	assert.Equal(t, "bridge", list.Plugins[0].Network.Type)

	a, err = prepare(Options{NetworkName: "b", IfName: "net1"})
	require.NoError(t, err)
	st, _ = recorded(t, a)
	assert.Equal(t, "b", st.Network, "pinned by name")
	assert.Equal(t, "net1", st.IfName)
	assert.JSONEq(t, b, string(st.Config), "the whole conflist, fields plugins alone know included")

	a, err = prepare(Options{NetworkName: "z"})
	require.NoError(t, err)
	st, _ = recorded(t, a)
	assert.Equal(t, "z", st.Network)

	// A broken first file is the pod network: an error naming it.
	write("00-broken.conflist", `{"name":`)
	a, err = prepare(Options{})
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, filepath.Join(dir, "00-broken.conflist"), ce.File)
	assert.Empty(t, a.State)
	assert.NoDirExists(t, a.Dir, "refused before anything is made")
	// Pinned by name, a broken other file does not matter.
	a, err = prepare(Options{NetworkName: "b"})
	require.NoError(t, err)
	st, _ = recorded(t, a)
	assert.Equal(t, "b", st.Network)
	// A pinned name that no file has: the broken file's error, which may
	// be why.
	_, err = prepare(Options{NetworkName: "nope"})
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, filepath.Join(dir, "00-broken.conflist"), ce.File)

	write("01-empty.conflist", `{"cniVersion":"1.0.0","name":"e","plugins":[]}`)
	require.NoError(t, os.Remove(filepath.Join(dir, "00-broken.conflist")))
	_, err = prepare(Options{})
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "plugins")
	require.NoError(t, os.Remove(filepath.Join(dir, "01-empty.conflist")))

	// Every plugin must be installed.
	write("05-missing.conflist", `{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"bridge"},{"type":"podsmith-no-such-plugin"}]}`)
	a, err = prepare(Options{})
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), `plugin "podsmith-no-such-plugin" is not installed`)
	assert.Empty(t, a.State)
	_, err = prepare(Options{NetworkName: "nope"})
	require.ErrorIs(t, err, ErrNoConfig, "no file of that name")
	assert.Contains(t, err.Error(), `"nope"`)
}

func TestAllowNoConfig(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "none")
	n, err := New(Options{ConfDir: empty, AllowNoConfig: true})
	require.NoError(t, err)
	a := &sandbox.NetworkAttachment{SandboxID: "x", Dir: filepath.Join(t.TempDir(), "network")}
	err = n.Prepare(context.Background(), a)
	require.ErrorIs(t, err, sandbox.ErrNoNetwork)
	assert.Empty(t, a.State)
	assert.NoDirExists(t, a.Dir, "loopback only: no cache dir either")
	// Without AllowNoConfig, or with a pinned network that is not there,
	// it is an error all the same.
	for _, o := range []Options{{ConfDir: empty}, {ConfDir: empty, AllowNoConfig: true, NetworkName: "n"}} {
		n, err = New(o)
		require.NoError(t, err)
		err = n.Prepare(context.Background(), a)
		require.ErrorIs(t, err, ErrNoConfig)
		assert.NotErrorIs(t, err, sandbox.ErrNoNetwork)
	}
}

func TestPrepareRefusesBadBandwidthFirst(t *testing.T) {
	n, err := New(Options{ConfDir: filepath.Join(t.TempDir(), "none")})
	require.NoError(t, err)
	a := &sandbox.NetworkAttachment{SandboxID: "x", Dir: t.TempDir(), Annotations: map[string]string{EgressBandwidthAnnotation: "fast"}}
	var be *BandwidthError
	require.ErrorAs(t, n.Prepare(context.Background(), a), &be)
	a.Annotations = nil
	require.ErrorIs(t, n.Prepare(context.Background(), a), ErrNoConfig)
}

func TestPodIPs(t *testing.T) {
	idx := func(i int) *int { return &i }
	ipnet := func(s string) net.IPNet {
		p := netip.MustParsePrefix(s)
		return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	}
	res := &types100.Result{
		Interfaces: []*types100.Interface{
			{Name: "cni0"}, {Name: "veth1"}, {Name: "eth0", Sandbox: "/run/netns/x"}, {Name: "net1", Sandbox: "/run/netns/x"},
		},
		IPs: []*types100.IPConfig{
			{Interface: idx(2), Address: ipnet("fd00::5/64")},
			{Interface: idx(0), Address: ipnet("10.0.0.1/24")},
			{Interface: idx(2), Address: ipnet("10.0.0.5/24")},
			{Interface: idx(3), Address: ipnet("10.1.0.5/24")},
			{Interface: idx(9), Address: ipnet("10.2.0.5/24")},
			{Interface: nil, Address: ipnet("10.3.0.5/24")},
		},
	}
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}, podIPs(res, "eth0"),
		"eth0's addresses in the pod, IPv4 first")
	// A result without interfaces (an IPAM-only chain): every address.
	bare := &types100.Result{IPs: []*types100.IPConfig{{Address: ipnet("10.3.0.5/24")}}}
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.3.0.5")}, podIPs(bare, "eth0"))
}

func TestErrors(t *testing.T) {
	cause := errors.New("boom")
	e := &Error{Op: "ADD", Network: "n", SandboxID: "0123456789abcdef", Err: cause}
	assert.Equal(t, `cni: ADD network "n" for sandbox 0123456789ab: boom`, e.Error())
	assert.ErrorIs(t, e, cause)
	assert.ErrorIs(t, e, ErrCNI)
	assert.Equal(t, `cni: GC network "n": boom`, (&Error{Op: "GC", Network: "n", Err: cause}).Error())
}

// scriptNetwork makes a network of shell-script plugins in temp dirs: no
// root, no namespace, the plugins only print and record. chain lists the
// plugins' configurations (a bare name is {"type": name}).
func scriptNetwork(t *testing.T, plugins map[string]string, chain []any, mod func(*Options)) *Network {
	t.Helper()
	bin, conf := t.TempDir(), t.TempDir()
	for name, script := range plugins {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755))
	}
	var ps []any
	for _, p := range chain {
		if name, ok := p.(string); ok {
			p = map[string]any{"type": name}
		}
		ps = append(ps, p)
	}
	list, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "scripts", "plugins": ps})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(conf, "10-scripts.conflist"), list, 0o644))
	o := Options{ConfDir: conf, BinDirs: []string{bin}}
	if mod != nil {
		mod(&o)
	}
	n, err := New(o)
	require.NoError(t, err)
	return n
}

// scriptPod is an attachment with a Dir of its own (a Builder's
// StateDir/network) and a netns path that names no namespace.
func scriptPod(t *testing.T) *sandbox.NetworkAttachment {
	return &sandbox.NetworkAttachment{
		SandboxID: "0123456789abcdef", NetnsPath: "/run/netns/podsmith-test-none",
		Pod: pod.Metadata{Name: "p", Namespace: "ns", UID: "u"}, Dir: filepath.Join(t.TempDir(), "network"),
	}
}

// plugin is a CNI plugin script: ADD prints a result with 10.199.0.5 on
// eth0 (passing a chained prevResult on is not needed for these tests);
// onDel runs for DEL. $in is the plugin's stdin.
func plugin(onDel string) string {
	return "#!/bin/sh\nin=$(cat)\ncase \"$CNI_COMMAND\" in\n" +
		"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\n" +
		"ADD) echo '{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"/x\"}],\"ips\":[{\"interface\":0,\"address\":\"10.199.0.5/24\"}]}';;\n" +
		"DEL) " + onDel + ";;\nesac\n"
}

// recorder is a plugin that records its stdin and its CNI_ variables for
// each command, in dir/<name>.<command>.json and .env.
func recorder(dir, name string) string {
	rec := filepath.Join(dir, name)
	return plugin("true") + "printf '%s' \"$in\" > " + rec + ".$CNI_COMMAND.json\nenv | grep '^CNI_' | sort > " + rec + ".$CNI_COMMAND.env\n"
}

// CacheEntries lists libcni's cached results in a cache dir (exported for
// the external tests).
func CacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "results"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Attach and Detach give the plugins what the pod is, as CNI's capability
// arguments (filtered by each plugin's capabilities) and CNI_ARGS; DEL gets
// the same from a JSON copy of the attachment, as the journal keeps it.
func TestCapabilityArgs(t *testing.T) {
	rec := t.TempDir()
	n := scriptNetwork(t, map[string]string{"all": recorder(rec, "all"), "narrow": recorder(rec, "narrow")}, []any{
		map[string]any{"type": "all", "capabilities": map[string]bool{"portMappings": true, "bandwidth": true, "dns": true, "cgroupPath": true}},
		map[string]any{"type": "narrow", "capabilities": map[string]bool{"portMappings": true, "dns": false}},
	}, nil)
	ctx := context.Background()
	a := scriptPod(t)
	a.Pod = pod.Metadata{Name: "web", Namespace: "shop", UID: "uid-1"}
	a.PortMappings = []pod.PortMapping{
		{HostPort: 8053, ContainerPort: 53, Protocol: pod.ProtocolUDP, HostIP: "127.0.0.1"},
		{HostPort: 8443, ContainerPort: 443}, // TCP, the zero value
		{HostPort: 9132, ContainerPort: 132, Protocol: pod.ProtocolSCTP},
	}
	a.Annotations = map[string]string{IngressBandwidthAnnotation: "10M", EgressBandwidthAnnotation: "1Mi"}
	a.DNS = &pod.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}}
	a.CgroupParent = "/podsmith-pods"
	require.NoError(t, n.Prepare(ctx, a))
	journaled, err := json.Marshal(a)
	require.NoError(t, err)
	ips, err := n.Attach(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.199.0.5")}, ips)

	var copied sandbox.NetworkAttachment
	require.NoError(t, json.Unmarshal(journaled, &copied))
	require.NoError(t, n.Detach(ctx, &copied))
	assert.Empty(t, CacheEntries(t, a.Dir), "a DEL that succeeds drops libcni's cache entry")

	const ports = `[{"hostPort":8053,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"},` +
		`{"hostPort":8443,"containerPort":443,"protocol":"tcp"},{"hostPort":9132,"containerPort":132,"protocol":"sctp"}]`
	want := map[string]string{
		"all": `{"portMappings":` + ports + `,"bandwidth":{"ingressRate":10000000,"ingressBurst":4294967295,"egressRate":1048576,"egressBurst":4294967295},` +
			`"dns":{"servers":["10.96.0.10"],"searches":["svc.cluster.local"],"options":["ndots:5"]},"cgroupPath":"/podsmith-pods"}`,
		"narrow": `{"portMappings":` + ports + `}`,
	}
	for _, cmd := range []string{"ADD", "DEL"} {
		for name, rc := range want {
			b, err := os.ReadFile(filepath.Join(rec, name+"."+cmd+".json"))
			require.NoError(t, err)
			var got struct {
				Name          string          `json:"name"`
				RuntimeConfig json.RawMessage `json:"runtimeConfig"`
			}
			require.NoError(t, json.Unmarshal(b, &got), string(b))
			assert.Equal(t, "scripts", got.Name)
			assert.JSONEq(t, rc, string(got.RuntimeConfig), "%s %s", name, cmd)

			env, err := os.ReadFile(filepath.Join(rec, name+"."+cmd+".env"))
			require.NoError(t, err)
			assert.Contains(t, string(env), "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=0123456789abcdef;K8S_POD_UID=uid-1\n")
			assert.Contains(t, string(env), "CNI_CONTAINERID=0123456789abcdef\n")
			assert.Contains(t, string(env), "CNI_IFNAME=eth0\n")
			if cmd == "ADD" {
				assert.Contains(t, string(env), "CNI_NETNS=/run/netns/podsmith-test-none\n")
			} else {
				// The pin names no namespace (as after a reboot): DEL runs
				// without one, so IPAM still releases the address.
				assert.NotContains(t, string(env), "CNI_NETNS=/")
			}
		}
	}
}

// Prepare needs a cache dir: Options.CacheDir, or else the attachment's
// Dir. Without one, libcni would use /var/lib/cni, the cache of the node's
// other runtimes; nothing runs then.
func TestPrepareNeedsACacheDir(t *testing.T) {
	rec := t.TempDir()
	n := scriptNetwork(t, map[string]string{"p": recorder(rec, "p")}, []any{"p"}, nil)
	ctx := context.Background()
	var ce *ConfigError
	for _, dir := range []string{"", "relative/network"} {
		a := scriptPod(t)
		a.Dir = dir
		err := n.Prepare(ctx, a)
		require.ErrorAs(t, err, &ce, "%q", dir)
		require.ErrorIs(t, err, ErrCNI)
		assert.Contains(t, err.Error(), "cache dir")
		assert.Empty(t, a.State)
	}

	// A symlink planted where the cache dir goes is refused: libcni
	// would follow it.
	a := scriptPod(t)
	elsewhere := t.TempDir()
	require.NoError(t, os.Symlink(elsewhere, a.Dir))
	err := n.Prepare(ctx, a)
	require.ErrorAs(t, err, &ce)
	require.ErrorIs(t, err, owndir.ErrNotOwn)
	assert.Empty(t, a.State)

	// The Builder's Dir: made, with its results dir, for us alone.
	a = scriptPod(t)
	require.NoError(t, n.Prepare(ctx, a))
	for _, d := range []string{a.Dir, filepath.Join(a.Dir, "results")} {
		st, err := os.Lstat(d)
		require.NoError(t, err)
		assert.True(t, st.IsDir())
		assert.Equal(t, fs.FileMode(0o700), st.Mode().Perm(), d)
	}

	// What carries a prepared state but has lost its Dir is refused too,
	// before any plugin runs, and so is a GC without a dir.
	a.Dir = ""
	_, err = n.Attach(ctx, a)
	require.ErrorAs(t, err, &ce)
	require.ErrorAs(t, n.Check(ctx, a), &ce)
	require.ErrorAs(t, n.Detach(ctx, a), &ce)
	require.ErrorAs(t, n.GC(ctx, "", nil), &ce)
	require.ErrorAs(t, n.GC(ctx, "relative", nil), &ce)
	ran, err := os.ReadDir(rec)
	require.NoError(t, err)
	assert.Empty(t, ran, "no plugin ran")

	// Options.CacheDir wins over the Dir, which is then left alone.
	cache := filepath.Join(t.TempDir(), "cache")
	n = scriptNetwork(t, map[string]string{"p": plugin("true")}, []any{"p"}, func(o *Options) { o.CacheDir = cache })
	a = scriptPod(t)
	require.NoError(t, n.Prepare(ctx, a))
	_, err = n.Attach(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, []string{"scripts-0123456789abcdef-eth0"}, CacheEntries(t, cache))
	assert.NoDirExists(t, a.Dir)
	a.Dir = "" // not needed with Options.CacheDir
	require.NoError(t, n.Detach(ctx, a))
	assert.Empty(t, CacheEntries(t, cache))
}

func TestUnpreparedAttachment(t *testing.T) {
	rec := t.TempDir()
	n := scriptNetwork(t, map[string]string{"p": recorder(rec, "p")}, []any{"p"}, nil)
	ctx := context.Background()
	for name, st := range map[string]json.RawMessage{
		"no state":         nil,
		"not JSON":         json.RawMessage(`{"network":`),
		"no configuration": json.RawMessage(`{"network":"scripts","if_name":"eth0"}`),
		"bad config":       json.RawMessage(`{"network":"scripts","if_name":"eth0","config":{"name":"x"}}`),
	} {
		a := scriptPod(t)
		a.State = st
		var ce *ConfigError
		_, err := n.Attach(ctx, a)
		require.ErrorAs(t, err, &ce, name)
		assert.Contains(t, ce.File, a.SandboxID, name)
		require.ErrorAs(t, n.Detach(ctx, a), &ce, name)
		require.ErrorAs(t, n.Check(ctx, a), &ce, name)
		require.ErrorIs(t, n.Check(ctx, a), ErrCNI, name)
	}
	ran, err := os.ReadDir(rec)
	require.NoError(t, err)
	assert.Empty(t, ran, "no plugin ran")
}

// When a chain's DEL fails, each plugin is deleted on its own with the
// ADD's result as prevResult; the cache entry stays for the retry, until a
// GC.
func TestDelFallbackKeepsPrevResult(t *testing.T) {
	rec := t.TempDir()
	broken := filepath.Join(rec, "a-is-broken")
	require.NoError(t, os.WriteFile(broken, nil, 0o644))
	record := func(name string) string {
		return `printf '%s' "$in" > ` + rec + "/" + name
	}
	n := scriptNetwork(t, map[string]string{
		"a": plugin(`[ -e ` + broken + ` ] && echo '{"cniVersion":"1.0.0","code":11,"msg":"a cannot DEL"}' && exit 1; true`),
		"b": plugin(record("b")), "c": plugin(record("c")),
	}, []any{"b", "c", "a"}, nil) // a's DEL runs first: b and c are DEL'd by the fallback alone
	ctx := context.Background()
	a := scriptPod(t)
	require.NoError(t, n.Prepare(ctx, a))
	ips, err := n.Attach(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.199.0.5")}, ips)

	err = n.Detach(ctx, a)
	require.ErrorIs(t, err, ErrCNI)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "DEL", ce.Op)
	assert.Contains(t, err.Error(), "plugin a: ")
	assert.Contains(t, err.Error(), "a cannot DEL")
	for _, p := range []string{"b", "c"} {
		got, err := os.ReadFile(filepath.Join(rec, p))
		require.NoError(t, err, p)
		var conf struct {
			Name       string           `json:"name"`
			CNIVersion string           `json:"cniVersion"`
			PrevResult *types100.Result `json:"prevResult"`
		}
		require.NoError(t, json.Unmarshal(got, &conf), string(got))
		assert.Equal(t, "scripts", conf.Name, p)
		assert.Equal(t, "1.0.0", conf.CNIVersion, p)
		require.NotNil(t, conf.PrevResult, "plugin %s got the ADD's result as prevResult", p)
		require.Len(t, conf.PrevResult.IPs, 1)
		assert.Equal(t, "10.199.0.5/24", conf.PrevResult.IPs[0].Address.String())
	}
	assert.Len(t, CacheEntries(t, a.Dir), 1, "the cached result stays for the retry")

	// A GC keeps what is valid, and collects the rest once its DEL works.
	require.NoError(t, n.GC(ctx, a.Dir, []string{a.SandboxID}))
	assert.Len(t, CacheEntries(t, a.Dir), 1)
	require.ErrorIs(t, n.GC(ctx, a.Dir, nil), ErrCNI, "a still fails")
	assert.Len(t, CacheEntries(t, a.Dir), 1)
	require.NoError(t, os.Remove(broken))
	require.NoError(t, n.GC(ctx, a.Dir, nil))
	assert.Empty(t, CacheEntries(t, a.Dir))

	// A chain of one plugin has no fallback: its error is the DEL's.
	n = scriptNetwork(t, map[string]string{"a": plugin(`echo '{"cniVersion":"1.0.0","code":11,"msg":"a cannot DEL"}'; exit 1`)}, []any{"a"}, nil)
	a = scriptPod(t)
	require.NoError(t, n.Prepare(ctx, a))
	err = n.Detach(ctx, a)
	require.ErrorIs(t, err, ErrCNI)
	assert.Contains(t, err.Error(), "a cannot DEL")
}

func TestDetachHonoursTheCallersDeadline(t *testing.T) {
	n := scriptNetwork(t, map[string]string{"slow": plugin("exec sleep 600")}, []any{"slow"}, nil)
	a := scriptPod(t)
	require.NoError(t, n.Prepare(context.Background(), a))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := n.Detach(ctx, a)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the undo timeout, not the 2-minute DEL timeout")
	require.ErrorIs(t, err, ErrCNI)
	assert.Less(t, time.Since(start), time.Minute)

	// DelTimeout bounds it when the caller's deadline is later.
	n = scriptNetwork(t, map[string]string{"slow": plugin("exec sleep 600")}, []any{"slow", "slow"}, func(o *Options) { o.DelTimeout = 300 * time.Millisecond })
	require.NoError(t, n.Prepare(context.Background(), a))
	lctx, lcancel := context.WithTimeout(context.Background(), time.Hour)
	defer lcancel()
	err = n.Detach(lctx, a)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotContains(t, err.Error(), "plugin slow: ", "no fallback after the deadline")

	// A cancelled (not timed-out) context does not stop a DEL.
	n = scriptNetwork(t, map[string]string{"ok": plugin("exit 0")}, []any{"ok"}, nil)
	require.NoError(t, n.Prepare(context.Background(), a))
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	require.NoError(t, n.Detach(cctx, a))
}

// An ADD that outlives AddTimeout is killed, and says so.
func TestAttachTimeout(t *testing.T) {
	n := scriptNetwork(t, map[string]string{"slow": strings.Replace(plugin("true"), "ADD) ", "ADD) exec sleep 600; ", 1)}, []any{"slow"},
		func(o *Options) { o.AddTimeout = 300 * time.Millisecond })
	a := scriptPod(t)
	require.NoError(t, n.Prepare(context.Background(), a))
	_, err := n.Attach(context.Background(), a)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "ADD", ce.Op)
	require.NoError(t, n.Detach(context.Background(), a))
}
