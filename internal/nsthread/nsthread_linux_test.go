package nsthread

import "testing"

// A dotted sysctl name keeps an interface's own dot as a slash; its path
// under /proc/sys swaps them back.
func TestSysctlPath(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward":               "net/ipv4/ip_forward",
		"net.ipv4.conf.eth0/100.forwarding": "net/ipv4/conf/eth0.100/forwarding",
		"kernel.shmmax":                     "kernel/shmmax",
		"net.ipv6.neigh.br/0.gc_stale_time": "net/ipv6/neigh/br.0/gc_stale_time",
	} {
		if got := sysctlPath.Replace(name); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}
