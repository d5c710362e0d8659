package cni

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

	for v, reason := range map[string]string{
		"": "not a quantity", "abc": "not a quantity", "-1M": "not a quantity", "1e6": "not a quantity",
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
	assert.Equal(t, DefaultCacheDir, o.CacheDir)
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

func TestLoadPicksTheFirstFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	write("20-b.conflist", `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}`)
	write("10-a.conf", `{"cniVersion":"1.0.0","name":"a","type":"bridge"}`)
	write("99-z.json", `{"cniVersion":"1.0.0","name":"z","type":"ptp"}`)
	write("notes.txt", "not a config")
	n, err := New(Options{ConfDir: dir})
	require.NoError(t, err)
	list, err := n.Load()
	require.NoError(t, err)
	assert.Equal(t, "a", list.Name, "the lexically first file, a .conf wrapped into a list")
	require.Len(t, list.Plugins, 1)

	n, err = New(Options{ConfDir: dir, NetworkName: "z"})
	require.NoError(t, err)
	list, err = n.Load()
	require.NoError(t, err)
	assert.Equal(t, "z", list.Name, "pinned by name")

	// A broken first file is the pod network: an error naming it.
	write("00-broken.conflist", `{"name":`)
	n, err = New(Options{ConfDir: dir})
	require.NoError(t, err)
	_, err = n.Load()
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, filepath.Join(dir, "00-broken.conflist"), ce.File)
	// Pinned by name, a broken other file does not matter.
	n, err = New(Options{ConfDir: dir, NetworkName: "b"})
	require.NoError(t, err)
	list, err = n.Load()
	require.NoError(t, err)
	assert.Equal(t, "b", list.Name)

	write("01-empty.conflist", `{"cniVersion":"1.0.0","name":"e","plugins":[]}`)
	require.NoError(t, os.Remove(filepath.Join(dir, "00-broken.conflist")))
	n, err = New(Options{ConfDir: dir})
	require.NoError(t, err)
	_, err = n.Load()
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "plugins")
}

func TestAllowNoConfig(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "none")
	n, err := New(Options{ConfDir: empty, AllowNoConfig: true})
	require.NoError(t, err)
	require.ErrorIs(t, n.Prepare(context.Background(), &Attachment{SandboxID: "x"}), ErrLoopbackOnly)
	// A pinned network that is not there is an error all the same.
	n, err = New(Options{ConfDir: empty, AllowNoConfig: true, NetworkName: "n"})
	require.NoError(t, err)
	require.ErrorIs(t, n.Prepare(context.Background(), &Attachment{SandboxID: "x"}), ErrNoConfig)
}

func TestPrepareRefusesBadBandwidthFirst(t *testing.T) {
	n, err := New(Options{ConfDir: filepath.Join(t.TempDir(), "none")})
	require.NoError(t, err)
	a := &Attachment{SandboxID: "x", Annotations: map[string]string{EgressBandwidthAnnotation: "fast"}}
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
// root, no namespace, the plugins only print and record.
func scriptNetwork(t *testing.T, plugins map[string]string, chain []string, mod func(*Options)) *Network {
	t.Helper()
	bin, conf := t.TempDir(), t.TempDir()
	for name, script := range plugins {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755))
	}
	var ps []string
	for _, p := range chain {
		ps = append(ps, `{"type":"`+p+`"}`)
	}
	list := `{"cniVersion":"1.0.0","name":"scripts","plugins":[` + strings.Join(ps, ",") + `]}`
	require.NoError(t, os.WriteFile(filepath.Join(conf, "10-scripts.conflist"), []byte(list), 0o644))
	o := Options{ConfDir: conf, BinDirs: []string{bin}, CacheDir: t.TempDir()}
	if mod != nil {
		mod(&o)
	}
	n, err := New(o)
	require.NoError(t, err)
	return n
}

// plugin is a CNI plugin script: ADD prints a result with 10.199.0.5 on
// eth0 (passing a chained prevResult on is not needed for these tests);
// onDel runs for DEL.
func plugin(onDel string) string {
	return "#!/bin/sh\nin=$(cat)\ncase \"$CNI_COMMAND\" in\n" +
		"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\n" +
		"ADD) echo '{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"/x\"}],\"ips\":[{\"interface\":0,\"address\":\"10.199.0.5/24\"}]}';;\n" +
		"DEL) " + onDel + ";;\nesac\n"
}

func TestDelFallbackKeepsPrevResult(t *testing.T) {
	rec := t.TempDir()
	record := func(name string) string {
		return `case "$in" in *prevResult*) echo yes > ` + rec + "/" + name + `;; *) echo no > ` + rec + "/" + name + `;; esac`
	}
	n := scriptNetwork(t, map[string]string{
		"a": plugin(`echo '{"cniVersion":"1.0.0","code":11,"msg":"a cannot DEL"}'; exit 1`),
		"b": plugin(record("b")), "c": plugin(record("c")),
	}, []string{"a", "b", "c"}, nil)
	ctx := context.Background()
	a := &Attachment{SandboxID: "0123456789abcdef", PodName: "p", PodNamespace: "ns", PodUID: "u"}
	res, err := n.Attach(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.199.0.5")}, res.IPs)

	err = n.Detach(ctx, a)
	require.ErrorIs(t, err, ErrCNI)
	assert.Contains(t, err.Error(), "a cannot DEL")
	for _, p := range []string{"b", "c"} {
		got, err := os.ReadFile(filepath.Join(rec, p))
		require.NoError(t, err, p)
		assert.Equal(t, "yes\n", string(got), "plugin %s got the ADD's result as prevResult", p)
	}
	cache, err := os.ReadDir(filepath.Join(n.Options().CacheDir, "results"))
	require.NoError(t, err)
	assert.Len(t, cache, 1, "the cached result stays for the retry")
}

func TestDetachHonoursTheCallersDeadline(t *testing.T) {
	n := scriptNetwork(t, map[string]string{"slow": plugin("exec sleep 600")}, []string{"slow"}, nil)
	a := &Attachment{SandboxID: "0123456789abcdef"}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := n.Detach(ctx, a)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the undo timeout, not the 2-minute DEL timeout")

	// A cancelled (not timed-out) context does not stop a DEL.
	n = scriptNetwork(t, map[string]string{"ok": plugin("exit 0")}, []string{"ok"}, nil)
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	require.NoError(t, n.Detach(cctx, a))
}
