package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalizeSysctlName(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":               "net.ipv4.ip_forward",
		"net/ipv4/ip_forward":               "net.ipv4.ip_forward",
		"net/ipv4/conf/eth0.100/forwarding": "net.ipv4.conf.eth0/100.forwarding",
		"net.ipv4.conf.eth0/100.forwarding": "net.ipv4.conf.eth0/100.forwarding",
		"kernel/shmmax":                     "kernel.shmmax",
		"plain":                             "plain",
	} {
		assert.Equal(t, want, NormalizeSysctlName(in), in)
	}
}

func TestNormalizeSysctls(t *testing.T) {
	ok := map[string]string{
		"kernel.shmmax":               "68719476736",
		"kernel.shmall":               "4294967296",
		"kernel.shm_rmid_forced":      "1",
		"kernel.msgmax":               "65536",
		"kernel.msgmnb":               "65536",
		"kernel.msgmni":               "32000",
		"kernel.sem":                  "250 32000 100 128",
		"fs.mqueue.msg_max":           "100",
		"net.ipv4.ping_group_range":   "0 2147483647",
		"net/core/somaxconn":          "1024",
		"net.ipv4.conf.all.rp_filter": "2",
	}
	got, err := NormalizeSysctls(ok, false, false)
	require.NoError(t, err)
	assert.Len(t, got, len(ok))
	assert.Equal(t, "1024", got["net.core.somaxconn"])
	assert.Equal(t, "0 2147483647", got["net.ipv4.ping_group_range"])

	got, err = NormalizeSysctls(nil, true, true)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestNormalizeSysctlsRefuses(t *testing.T) {
	tests := []struct {
		name, key, value string
		hostNet, hostIPC bool
		reason           string
	}{
		{name: "node-wide kernel sysctl", key: "kernel.panic", value: "1", reason: "not a namespaced sysctl"},
		{name: "vm sysctl", key: "vm.swappiness", value: "1", reason: "not a namespaced sysctl"},
		{name: "fs sysctl outside mqueue", key: "fs.file-max", value: "1", reason: "not a namespaced sysctl"},
		{name: "kernel.sem prefix only", key: "kernel.semx", value: "1", reason: "not a namespaced sysctl"},
		{name: "net with host network", key: "net.core.somaxconn", value: "1", hostNet: true, reason: "host's network"},
		{name: "shm with host ipc", key: "kernel.shmmax", value: "1", hostIPC: true, reason: "host's IPC"},
		{name: "mqueue with host ipc", key: "fs.mqueue.msg_max", value: "1", hostIPC: true, reason: "host's IPC"},
		{name: "sem with host ipc", key: "kernel.sem", value: "1 2 3 4", hostIPC: true, reason: "host's IPC"},
		{name: "empty name", key: "", value: "1", reason: "empty name"},
		{name: "space in name", key: "net.core. somaxconn", value: "1", reason: "contains"},
		{name: "newline in name", key: "net.core.somaxconn\nkernel.panic", value: "1", reason: "contains"},
		{name: "NUL in name", key: "net.core\x00", value: "1", reason: "contains"},
		{name: "newline in value", key: "net.core.somaxconn", value: "1\nkernel.panic=1", reason: "newline"},
		{name: "NUL in value", key: "net.core.somaxconn", value: "1\x00", reason: "newline or NUL"},
		{name: "CR in value", key: "net.core.somaxconn", value: "1\r", reason: "newline"},
		{name: "value longer than a page", key: "kernel.shm_rmid_forced", value: strings.Repeat("1", MaxSysctlValueLen+1), reason: "at most 4095"},
		{name: "empty element", key: "net..core", value: "1", reason: "empty element"},
		{name: "leading dot", key: ".net.core", value: "1", reason: "empty element"},
		{name: "trailing slash", key: "net/core/", value: "1", reason: "empty element"},
		{name: "path traversal", key: "net/../../etc", value: "1", reason: "empty element"},
		{name: "too long", key: "net." + strings.Repeat("a", 300), value: "1", reason: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NormalizeSysctls(map[string]string{tt.key: tt.value}, tt.hostNet, tt.hostIPC)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
			var se *SysctlError
			require.True(t, errors.As(err, &se))
			assert.Equal(t, tt.key, se.Name)
			assert.Contains(t, se.Reason, tt.reason)
		})
	}
}

func TestNormalizeSysctlsReportsEveryProblem(t *testing.T) {
	_, err := NormalizeSysctls(map[string]string{
		"kernel.panic":         "1",
		"vm.overcommit_memory": "1",
		"net.core.somaxconn":   "128",
		"net/core/somaxconn":   "256",
	}, false, false)
	require.Error(t, err)
	var names []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var se *SysctlError
		require.True(t, errors.As(e, &se))
		names = append(names, se.Name)
	}
	assert.ElementsMatch(t, []string{"kernel.panic", "vm.overcommit_memory", "net/core/somaxconn"}, names,
		"one of the two spellings of the same sysctl is refused as a duplicate")
}

func FuzzNormalizeSysctls(f *testing.F) {
	f.Add("net.ipv4.ip_forward", "1", false, false)
	f.Add("net/ipv4/conf/eth0.1/forwarding", "0", false, false)
	f.Add("kernel.shmmax", "1\n2", false, true)
	f.Add("kernel.sem", "1 2 3 4", false, false)
	f.Fuzz(func(t *testing.T, name, value string, hostNet, hostIPC bool) {
		out, err := NormalizeSysctls(map[string]string{name: value}, hostNet, hostIPC)
		if err != nil {
			var se *SysctlError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error of the wrong type: %v", err)
			}
			return
		}
		if len(out) != 1 {
			t.Fatalf("accepted one sysctl, got %d", len(out))
		}
		for k, v := range out {
			if v != value {
				t.Fatalf("value changed: %q -> %q", value, v)
			}
			if len(v) > MaxSysctlValueLen {
				t.Fatalf("accepted a value of %d bytes", len(v))
			}
			if strings.ContainsAny(k+v, "\n\r\x00") || strings.ContainsAny(k, " \t") {
				t.Fatalf("accepted a line break, NUL or blank: %q=%q", k, v)
			}
			if strings.Contains(k, "..") || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") {
				t.Fatalf("accepted an empty element: %q", k)
			}
			switch classify(k) {
			case notNamespaced:
				t.Fatalf("accepted a node-wide sysctl %q", k)
			case netSysctl:
				if hostNet {
					t.Fatalf("accepted %q with host network", k)
				}
			case ipcSysctl:
				if hostIPC {
					t.Fatalf("accepted %q with host IPC", k)
				}
			}
			if NormalizeSysctlName(k) != k {
				t.Fatalf("output %q is not in dotted form", k)
			}
		}
	})
}

func TestSysctlInterface(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.conf.eth0.rp_filter":      "eth0",
		"net.ipv6.conf.eth0/100.forwarding": "eth0.100",
		"net.ipv4.neigh.eth1.gc_stale_time": "eth1",
		"net.ipv4.conf.all.rp_filter":       "",
		"net.ipv4.conf.default.rp_filter":   "",
		"net.ipv4.conf.lo.rp_filter":        "",
		"net.ipv4.ip_forward":               "",
		"net.ipv4.conf.eth0":                "",
		"kernel.shmmax":                     "",
		"net.core.somaxconn":                "",
	} {
		if got := SysctlInterface(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
