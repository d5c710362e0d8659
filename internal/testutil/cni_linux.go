package testutil

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/flock"
	"github.com/podsmith/podsmith/internal/linkwait"
)

// CNINetwork is a CNI network made for one test: a bridge and a subnet of
// its own (10.199.x.0/24, never a real node's), host-local IPAM with its
// state under the test's temp dir, and Debian's plugins from /usr/lib/cni.
//
// Tests with a CNINetwork hold a machine-wide lock for their duration:
// the bridge plugin turns IP forwarding on and portmap adds chains that all
// users share (CNI-HOSTPORT-*), and each test puts back what it found. The
// cleanup checks that the test left no veth on the bridge, no address
// allocated and no iptables rule of its own, then removes the bridge.
type CNINetwork struct {
	Name     string // the network's and the bridge's name
	Subnet   netip.Prefix
	Gateway  netip.Addr
	ConfDir  string
	BinDirs  []string
	IPAMDir  string // host-local's dataDir
	CacheDir string // libcni's cache
	// PluginDir holds the test's own plugins (searched first).
	PluginDir string
}

// CNINetworkOptions shape a CNINetwork's configuration.
type CNINetworkOptions struct {
	// Portmap adds the portmap plugin (capability portMappings).
	Portmap bool
	// Bandwidth adds the bandwidth plugin (capability bandwidth).
	Bandwidth bool
	// Extra plugin configurations, after the others.
	Extra []map[string]any
	// IPAM is the bridge's IPAM plugin type, given host-local's
	// configuration; "" is host-local. Write another with WritePlugin.
	IPAM string
}

// cniPluginDir is where Debian's containernetworking-plugins are.
const cniPluginDir = "/usr/lib/cni"

// cniLock is the machine-wide lock of tests that use CNI plugins.
const cniLock = "/run/lock/podsmith-cni-tests.lock"

// NewCNINetwork makes a test network. Call it after CheckLeaks, so that its
// cleanup (which checks the bridge has no veth left, then removes it) runs
// before the leak check.
func NewCNINetwork(t testing.TB, o CNINetworkOptions) *CNINetwork {
	t.Helper()
	RequireRoot(t)
	RequireBinaries(t, "ip", "iptables", "iptables-save")
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(cniPluginDir, p)); err != nil {
			skipOrFail(t, os.Getenv(EnvRequireRoot) == "1", fmt.Sprintf("test needs the CNI plugin %s: %v", p, err))
			return nil
		}
	}
	lock := lockCNITests(t)
	b := make([]byte, 5)
	_, err := rand.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := &CNINetwork{
		Name:      "pst" + hex.EncodeToString(b[:4]),
		Subnet:    netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 199, b[4], 0}), 24),
		ConfDir:   filepath.Join(dir, "net.d"),
		IPAMDir:   filepath.Join(dir, "ipam"),
		CacheDir:  filepath.Join(dir, "cache"),
		PluginDir: filepath.Join(dir, "plugins"),
	}
	n.Gateway = n.Subnet.Addr().Next()
	n.BinDirs = []string{n.PluginDir, cniPluginDir}
	for _, d := range []string{n.ConfDir, n.IPAMDir, n.PluginDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	forward, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	chainsBefore := natChains(t)

	plugins := []map[string]any{{
		"type": "bridge", "bridge": n.Name, "isGateway": true, "ipMasq": false,
		"ipam": map[string]any{
			"type": cmp.Or(o.IPAM, "host-local"), "dataDir": n.IPAMDir,
			"ranges": [][]map[string]string{{{"subnet": n.Subnet.String()}}},
		},
	}}
	if o.Portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	}
	if o.Bandwidth {
		plugins = append(plugins, map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}})
	}
	plugins = append(plugins, o.Extra...)
	n.WriteConf(t, "10-"+n.Name+".conflist", map[string]any{"cniVersion": "1.0.0", "name": n.Name, "plugins": plugins})

	t.Cleanup(func() {
		defer lock.Close()
		for _, port := range n.Ports() {
			t.Errorf("leaked veth %s on bridge %s", port, n.Name)
			_ = exec.Command("ip", "link", "del", port).Run()
		}
		if ips := n.Allocations(); len(ips) > 0 {
			t.Errorf("leaked IPAM allocations in %s: %v", n.IPAMDir, ips)
		}
		if rules := n.Rules(t); len(rules) > 0 {
			t.Errorf("leaked iptables rules of network %s:\n%s", n.Name, strings.Join(rules, "\n"))
			n.removeRules(t)
		}
		_ = exec.Command("ip", "link", "del", n.Name).Run()
		if len(forward) > 0 {
			if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", forward, 0o644); err != nil {
				t.Errorf("put back net.ipv4.ip_forward=%s: %v", strings.TrimSpace(string(forward)), err)
			}
		}
		removeNewHostportChains(t, chainsBefore)
	})
	return n
}

// lockCNITests takes the machine-wide lock of CNI tests, waiting for it.
func lockCNITests(t testing.TB) *os.File {
	t.Helper()
	f, err := os.OpenFile(cniLock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatalf("CNI test lock: %v", err)
	}
	if err := flock.Lock(context.Background(), int(f.Fd()), unix.LOCK_EX, 0, nil); err != nil {
		f.Close()
		t.Fatalf("CNI test lock: %v", err)
	}
	return f
}

// WriteConf writes a network configuration file into the conf dir.
func (n *CNINetwork) WriteConf(t testing.TB, name string, conf any) string {
	t.Helper()
	var b []byte
	if s, ok := conf.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.MarshalIndent(conf, "", "  "); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(n.ConfDir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// WritePlugin writes an executable plugin (a shell script) into the test's
// plugin dir.
func (n *CNINetwork) WritePlugin(t testing.TB, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(n.PluginDir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// Allocations returns the addresses host-local holds for the network.
func (n *CNINetwork) Allocations() []string {
	ents, _ := os.ReadDir(filepath.Join(n.IPAMDir, n.Name))
	var ips []string
	for _, e := range ents {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

// Ports returns the interfaces enslaved to the bridge.
func (n *CNINetwork) Ports() []string {
	return n.ports()
}

// PortsAfterTeardown is Ports once the kernel has finished tearing down
// what was let go of (it removes a pod's veth pair asynchronously after
// its network namespace's last holder went, as after a crash during CNI
// ADD, before libcni cached the result that names the veth): it waits,
// on the kernel's link events, up to 10 s for the ports to go.
func (n *CNINetwork) PortsAfterTeardown() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = linkwait.Gone(ctx, n.ports())
	return n.ports()
}

func (n *CNINetwork) ports() []string {
	ents, _ := os.ReadDir(filepath.Join("/sys/class/net", n.Name, "brif"))
	var ports []string
	for _, e := range ents {
		ports = append(ports, e.Name())
	}
	return ports
}

// Rules returns the iptables rules (all tables) that name the network:
// portmap tags its rules with it.
func (n *CNINetwork) Rules(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, `\"`+n.Name+`\"`) || strings.Contains(l, `"`+n.Name+`"`) {
			rules = append(rules, l)
		}
	}
	return rules
}

// removeRules deletes the iptables rules that name the network, and the
// per-pod chains they jump to (portmap's CNI-DN-*), so that one failing
// test does not leave them on the host.
func (n *CNINetwork) removeRules(t testing.TB) {
	for _, table := range []string{"nat", "filter", "mangle"} {
		out, err := exec.Command("iptables-save", "-t", table).Output()
		if err != nil {
			t.Errorf("iptables-save -t %s: %v", table, err)
			continue
		}
		var chains []string
		for _, l := range strings.Split(string(out), "\n") {
			f := splitRule(l)
			if len(f) < 3 || f[0] != "-A" || !(strings.Contains(l, `\"`+n.Name+`\"`) || strings.Contains(l, `"`+n.Name+`"`)) {
				continue
			}
			if i := slices.Index(f, "-j"); i > 0 && i+1 < len(f) && strings.HasPrefix(f[i+1], "CNI-DN-") {
				chains = append(chains, f[i+1])
			}
			if out, err := exec.Command("iptables", append([]string{"-t", table, "-D"}, f[1:]...)...).CombinedOutput(); err != nil {
				t.Errorf("remove %q: %v: %s", l, err, out)
			}
		}
		for _, c := range chains {
			for _, op := range []string{"-F", "-X"} {
				if out, err := exec.Command("iptables", "-t", table, op, c).CombinedOutput(); err != nil {
					t.Errorf("iptables -t %s %s %s: %v: %s", table, op, c, err, out)
				}
			}
		}
	}
}

// NAT returns the nat table, as iptables-save prints it.
func NAT(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	return string(out)
}

// natChains lists the nat table's chains.
func natChains(t testing.TB) []string {
	var chains []string
	for _, l := range strings.Split(NAT(t), "\n") {
		if strings.HasPrefix(l, ":") {
			chains = append(chains, strings.Fields(l[1:])[0])
		}
	}
	return chains
}

// removeNewHostportChains removes portmap's shared chains if this test
// made them and they hold no rule any more.
func removeNewHostportChains(t testing.TB, before []string) {
	var created []string
	for _, c := range natChains(t) {
		if strings.HasPrefix(c, "CNI-HOSTPORT-") && !slices.Contains(before, c) {
			created = append(created, c)
		}
	}
	if len(created) == 0 {
		return
	}
	nat := NAT(t)
	for _, c := range created {
		for _, l := range strings.Split(nat, "\n") {
			if strings.HasPrefix(l, "-A "+c+" ") && strings.Contains(l, " -j CNI-DN-") {
				return // still in use by someone: leave the shared chains
			}
		}
	}
	for _, l := range strings.Split(nat, "\n") {
		f := splitRule(l)
		if len(f) > 2 && f[0] == "-A" && slices.ContainsFunc(created, func(c string) bool { return strings.HasSuffix(l, "-j "+c) }) && !slices.Contains(created, f[1]) {
			if out, err := exec.Command("iptables", append([]string{"-t", "nat", "-D"}, f[1:]...)...).CombinedOutput(); err != nil {
				t.Errorf("remove %q: %v: %s", l, err, out)
			}
		}
	}
	for _, c := range created {
		_ = exec.Command("iptables", "-t", "nat", "-F", c).Run()
	}
	for _, c := range created {
		if out, err := exec.Command("iptables", "-t", "nat", "-X", c).CombinedOutput(); err != nil {
			t.Errorf("remove chain %s: %v: %s", c, err, out)
		}
	}
}

// splitRule splits an iptables-save line into arguments, as a shell would:
// a comment in double quotes is one argument.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	in, esc, started := false, false, false
	for _, r := range line {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == '"':
			in, started = !in, true
		case r == ' ' && !in:
			if started || cur.Len() > 0 {
				args = append(args, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
		}
	}
	if started || cur.Len() > 0 {
		args = append(args, cur.String())
	}
	return args
}

// Ping sends one ICMP echo request to ip (IPv4) and waits for the reply.
func Ping(ip netip.Addr, timeout time.Duration) error {
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	id := uint16(os.Getpid())
	msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'p', 'o', 'd', 's', 'm', 'i', 't', 'h'}
	binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: ip.AsSlice()}); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s: %w", ip, err)
		}
		// The raw socket gives the ICMP message without the IP header.
		if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id && from.String() == ip.String() {
			return nil
		}
	}
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// WaitLinkGone waits (for netlink's word, not by polling) until the link
// is deleted, or timeout passes. The kernel deletes a veth whose peer's
// namespace dies asynchronously, after the namespace's last user is gone.
func WaitLinkGone(name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := linkwait.Gone(ctx, []string{name}); err != nil {
		return fmt.Errorf("link %s still there after %s: %w", name, timeout, err)
	}
	return nil
}

// Gate is an IPAM plugin held mid-ADD: "gated" (CNINetworkOptions{IPAM:
// "gated"}), which on ADD writes its PID to a FIFO, then waits for a line
// on another before it runs host-local. It stands for the plugins a caller
// that gave up or died mid-ADD leaves running.
type Gate struct {
	started, gate string
}

// WriteGatedIPAM writes the "gated" IPAM plugin into the network's plugin
// dir, with its FIFOs in a temp dir of t.
func (n *CNINetwork) WriteGatedIPAM(t testing.TB) *Gate {
	t.Helper()
	dir := t.TempDir()
	g := &Gate{started: filepath.Join(dir, "started"), gate: filepath.Join(dir, "gate")}
	for _, f := range []string{g.started, g.gate} {
		if err := unix.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The plugin holds the gate open for reading before it says it runs,
	// so that a writer finds a reader for as long as it lives.
	n.WritePlugin(t, "gated", "#!/bin/sh\nconf=$(cat)\n"+
		"if [ \"$CNI_COMMAND\" = ADD ]; then exec 3<>"+g.gate+"; echo $$ > "+g.started+"; read _ <&3; exec 3<&-; fi\n"+
		"exec "+filepath.Join(cniPluginDir, "host-local")+" <<EOF\n$conf\nEOF\n")
	return g
}

// Started waits until an ADD reaches the plugin and returns its PID. It
// fails the test, never hangs it, if none comes within a minute or
// Abandon is called.
func (g *Gate) Started(t testing.TB) int {
	t.Helper()
	// Read and write: the open waits for no writer, and the read has a
	// deadline (a FIFO is in Go's poller).
	f, err := os.OpenFile(g.started, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		t.Fatalf("no ADD reached the gated plugin: %v", err)
	}
	var pid int
	if _, err := fmt.Sscan(line, &pid); err != nil {
		t.Fatalf("gated plugin's PID %q: %v (abandoned: its caller failed first)", line, err)
	}
	return pid
}

// Abandon makes a Started that waits for a plugin that will never come
// (its caller failed before the ADD) fail at once.
func (g *Gate) Abandon() {
	if w, err := os.OpenFile(g.started, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
		_, _ = w.WriteString("\n") // an empty PID
		w.Close()
	}
}

// Open lets a plugin still waiting go on (it allocates an address) and
// waits until it has exited, and reports whether one was waiting.
func (g *Gate) Open(t testing.TB, pid int) (waiting bool) {
	t.Helper()
	w, err := os.OpenFile(g.gate, os.O_WRONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENXIO) {
		return false // no reader: the plugin is gone
	}
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.WriteString("go\n")
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitExit(pid); err != nil {
		t.Fatal(err)
	}
	return true
}
