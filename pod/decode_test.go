package pod_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/pod"
)

// maxConfigSize is Decode's documented bound on its input (4 MiB).
const maxConfigSize = 4 << 20

// crictlPod is what testdata/pod-config.json and pod-config.yaml hold.
func crictlPod() *pod.Config {
	return &pod.Config{
		Metadata: pod.Metadata{
			Name:      "nginx-sandbox",
			Namespace: "default",
			UID:       "hdishd83djaidwnduwk28bcsb",
			Attempt:   1,
		},
		Hostname:     "nginx",
		LogDirectory: "/var/log/pods/default_nginx-sandbox_hdishd83djaidwnduwk28bcsb",
		DNSConfig: &pod.DNSConfig{
			Servers:  []string{"10.96.0.10", "2001:db8::53"},
			Searches: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:  []string{"ndots:5", "edns0"},
		},
		PortMappings: []pod.PortMapping{
			{Protocol: pod.ProtocolTCP, ContainerPort: 80, HostPort: 8080, HostIP: "127.0.0.1"},
			{Protocol: pod.ProtocolUDP, ContainerPort: 53, HostPort: 5353},
			{Protocol: pod.ProtocolSCTP, ContainerPort: 9999},
		},
		Labels: map[string]string{
			"app":                    "nginx",
			"io.kubernetes.pod.name": "nginx-sandbox",
		},
		Annotations: map[string]string{
			"kubernetes.io/config.source": "api",
			"io.kubernetes.cri-o.ShmSize": "128Mi",
		},
		Linux: &pod.LinuxConfig{
			CgroupParent: "/kubepods/burstable/podhdishd83djaidwnduwk28bcsb",
			Sysctls: map[string]string{
				"net.ipv4.ip_unprivileged_port_start": "0",
				"kernel.shm_rmid_forced":              "1",
			},
			SecurityContext: &pod.SecurityContext{
				NamespaceOptions: &pod.NamespaceOptions{
					Network: pod.NamespaceNode,
					Pid:     pod.NamespaceContainer,
					Ipc:     pod.NamespacePod,
				},
				SelinuxOptions: &pod.SELinuxOptions{
					User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c1,c2",
				},
				RunAsUser:          &pod.Int64Value{Value: 1000},
				RunAsGroup:         &pod.Int64Value{Value: 3000},
				SupplementalGroups: []int64{4000, 5000},
				ReadonlyRootfs:     true,
				Privileged:         false,
				Seccomp: &pod.SecurityProfile{
					ProfileType:  pod.ProfileLocalhost,
					LocalhostRef: "/var/lib/kubelet/seccomp/audit.json",
				},
				SeccompProfilePath: "runtime/default",
			},
			Overhead: &pod.Resources{
				CPUPeriod: 100000, CPUQuota: 25000, CPUShares: 256, MemoryLimitInBytes: 128 << 20,
			},
			Resources: &pod.Resources{
				CPUPeriod:              100000,
				CPUQuota:               200000,
				CPUShares:              2048,
				MemoryLimitInBytes:     512 << 20,
				OomScoreAdj:            -997,
				CpusetCpus:             "0-3",
				CpusetMems:             "0",
				HugepageLimits:         []pod.HugepageLimit{{PageSize: "2MB", Limit: 1 << 30}},
				Unified:                map[string]string{"memory.high": "500000000"},
				MemorySwapLimitInBytes: 512 << 20,
			},
		},
	}
}

func TestDecodeConfigCrictlFormat(t *testing.T) {
	for _, file := range []string{"pod-config.json", "pod-config.yaml"} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", file)
			c, err := pod.Load(path)
			require.NoError(t, err)
			assert.Equal(t, crictlPod(), c)

			data, err := os.ReadFile(path)
			require.NoError(t, err)
			c, err = pod.Decode(data)
			require.NoError(t, err)
			assert.Equal(t, crictlPod(), c)

			// The helpers read the namespace options.
			assert.True(t, c.HostNetwork())
			assert.False(t, c.HostPID())
			assert.False(t, c.HostIPC())
			assert.False(t, c.Privileged())
		})
	}
}

func TestDecodeConfigEnumNamesInYAML(t *testing.T) {
	c, err := pod.Load(filepath.Join("testdata", "pod-config-names.yaml"))
	require.NoError(t, err)
	assert.Equal(t, []pod.PortMapping{
		{Protocol: pod.ProtocolUDP, ContainerPort: 53, HostPort: 53},
		{Protocol: pod.ProtocolSCTP, ContainerPort: 3868},
		{Protocol: pod.ProtocolTCP, ContainerPort: 8080},
	}, c.PortMappings)
	sc := c.Linux.SecurityContext
	assert.Equal(t, &pod.NamespaceOptions{Network: pod.NamespaceNode, Pid: pod.NamespacePod, Ipc: pod.NamespaceNode}, sc.NamespaceOptions)
	assert.Equal(t, &pod.SecurityProfile{ProfileType: pod.ProfileLocalhost, LocalhostRef: "/etc/podsmith/pause.json"}, sc.Seccomp)
	assert.Equal(t, &pod.SecurityProfile{ProfileType: pod.ProfileUnconfined}, sc.Apparmor)
	assert.True(t, c.HostNetwork())
	assert.True(t, c.HostIPC())
}

func TestDecodeConfigEnums(t *testing.T) {
	ns := func(field, value string) string {
		return `{"linux":{"security_context":{"namespace_options":{"` + field + `":` + value + `}}}}`
	}
	nsOf := func(c *pod.Config) pod.NamespaceOptions { return *c.Linux.SecurityContext.NamespaceOptions }
	for _, tc := range []struct {
		in   string
		want pod.NamespaceOptions
	}{
		{ns("network", "0"), pod.NamespaceOptions{Network: pod.NamespacePod}},
		{ns("network", "2"), pod.NamespaceOptions{Network: pod.NamespaceNode}},
		{ns("network", `"NODE"`), pod.NamespaceOptions{Network: pod.NamespaceNode}},
		{ns("network", `"node"`), pod.NamespaceOptions{Network: pod.NamespaceNode}},
		{ns("network", "null"), pod.NamespaceOptions{}},
		{ns("pid", `"CONTAINER"`), pod.NamespaceOptions{Pid: pod.NamespaceContainer}},
		{ns("pid", "1"), pod.NamespaceOptions{Pid: pod.NamespaceContainer}},
		{ns("ipc", `"Target"`), pod.NamespaceOptions{Ipc: pod.NamespaceTarget}},
		{ns("ipc", "3"), pod.NamespaceOptions{Ipc: pod.NamespaceTarget}},
	} {
		c, err := pod.Decode([]byte(tc.in))
		if assert.NoError(t, err, tc.in) {
			assert.Equal(t, tc.want, nsOf(c), tc.in)
		}
	}

	for _, tc := range []struct {
		in   string
		want pod.Protocol
	}{
		{"0", pod.ProtocolTCP}, {"1", pod.ProtocolUDP}, {"2", pod.ProtocolSCTP},
		{`"TCP"`, pod.ProtocolTCP}, {`"udp"`, pod.ProtocolUDP}, {`"Sctp"`, pod.ProtocolSCTP},
	} {
		in := `{"port_mappings":[{"protocol":` + tc.in + `,"container_port":1}]}`
		c, err := pod.Decode([]byte(in))
		if assert.NoError(t, err, in) {
			assert.Equal(t, tc.want, c.PortMappings[0].Protocol, in)
		}
	}

	for _, tc := range []struct {
		in   string
		want pod.ProfileType
	}{
		{"0", pod.ProfileRuntimeDefault}, {"1", pod.ProfileUnconfined}, {"2", pod.ProfileLocalhost},
		{`"RuntimeDefault"`, pod.ProfileRuntimeDefault}, {`"unconfined"`, pod.ProfileUnconfined},
		{`"Localhost"`, pod.ProfileLocalhost}, {`"LOCALHOST"`, pod.ProfileLocalhost},
	} {
		in := `{"linux":{"security_context":{"seccomp":{"profile_type":` + tc.in + `}}}}`
		c, err := pod.Decode([]byte(in))
		if assert.NoError(t, err, in) {
			assert.Equal(t, tc.want, c.Linux.SecurityContext.Seccomp.ProfileType, in)
		}
	}
}

func TestDecodeConfigEnumsRoundTrip(t *testing.T) {
	c := &pod.Config{PortMappings: []pod.PortMapping{{Protocol: pod.ProtocolUDP, ContainerPort: 53}}}
	c.Linux = &pod.LinuxConfig{SecurityContext: &pod.SecurityContext{
		NamespaceOptions: &pod.NamespaceOptions{Network: pod.NamespaceNode},
		Seccomp:          &pod.SecurityProfile{ProfileType: pod.ProfileUnconfined},
	}}
	data, err := json.Marshal(c)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"protocol":1`)
	assert.Contains(t, string(data), `"network":2`)
	assert.Contains(t, string(data), `"profile_type":1`)
	back, err := pod.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, c, back)

	assert.Equal(t, "UDP", pod.ProtocolUDP.String())
	assert.Equal(t, "NODE", pod.NamespaceNode.String())
	assert.Equal(t, "Localhost", pod.ProfileLocalhost.String())
	assert.Equal(t, "7", pod.Protocol(7).String())
	assert.Equal(t, "-1", pod.NamespaceMode(-1).String())
}

// requireDecodeError checks that err is a *DecodeError about field (""
// for the document as a whole) matching ErrInvalid, and returns it.
func requireDecodeError(t *testing.T, err error, field string, msgAndArgs ...any) *pod.DecodeError {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.ErrorIs(t, err, pod.ErrInvalid, msgAndArgs...)
	var de *pod.DecodeError
	require.ErrorAs(t, err, &de, msgAndArgs...)
	assert.Equal(t, field, de.Field, msgAndArgs...)
	assert.NotEmpty(t, de.Reason, msgAndArgs...)
	assert.Empty(t, de.File, msgAndArgs...)
	return de
}

func TestDecodeConfigBadEnums(t *testing.T) {
	const nsOpts = "linux.security_context.namespace_options"
	for _, tc := range []struct {
		in, field, mentions string
	}{
		{`{"linux":{"security_context":{"namespace_options":{"network":4}}}}`, nsOpts + ".network", "4"},
		{`{"linux":{"security_context":{"namespace_options":{"network":-1}}}}`, nsOpts + ".network", "-1"},
		{`{"linux":{"security_context":{"namespace_options":{"network":2147483648}}}}`, nsOpts + ".network", ""},
		{`{"linux":{"security_context":{"namespace_options":{"network":1.5}}}}`, nsOpts + ".network", ""},
		{`{"linux":{"security_context":{"namespace_options":{"network":"HOST"}}}}`, nsOpts + ".network", "HOST"},
		{`{"linux":{"security_context":{"namespace_options":{"network":"2"}}}}`, nsOpts + ".network", ""},
		{`{"linux":{"security_context":{"namespace_options":{"network":true}}}}`, nsOpts + ".network", ""},
		{`{"linux":{"security_context":{"namespace_options":{"pid":{}}}}}`, nsOpts + ".pid", ""},
		{`{"linux":{"security_context":{"namespace_options":{"ipc":["NODE"]}}}}`, nsOpts + ".ipc", ""},
		{`{"port_mappings":[{"protocol":"TCP"},{"protocol":"ICMP"}]}`, "port_mappings[1].protocol", "ICMP"},
		{`{"port_mappings":[{"protocol":0},{"protocol":3}]}`, "port_mappings[1].protocol", "3"},
		{`{"port_mappings":[{"protocol":false}]}`, "port_mappings[0].protocol", ""},
		{`{"linux":{"security_context":{"seccomp":{"profile_type":"Custom"}}}}`, "linux.security_context.seccomp.profile_type", "Custom"},
		{`{"linux":{"security_context":{"seccomp":{"profile_type":3}}}}`, "linux.security_context.seccomp.profile_type", "3"},
		{`{"linux":{"security_context":{"apparmor":{"profile_type":"enforce"}}}}`, "linux.security_context.apparmor.profile_type", "enforce"},
	} {
		_, err := pod.Decode([]byte(tc.in))
		de := requireDecodeError(t, err, tc.field, tc.in)
		assert.Contains(t, de.Error(), tc.mentions, tc.in)
		assert.Contains(t, de.Error(), tc.field, tc.in)
	}

	// The same in YAML.
	_, err := pod.Decode([]byte("port_mappings:\n- protocol: tcp\n- protocol: icmp\n"))
	requireDecodeError(t, err, "port_mappings[1].protocol")
	_, err = pod.Decode([]byte("linux:\n  security_context:\n    namespace_options:\n      network: 5\n"))
	requireDecodeError(t, err, nsOpts+".network")
}

func TestDecodeConfigUnknownFields(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{`{"metdata":{}}`, "metdata"},
		{`{"Metadata":{"name":"a"}}`, "Metadata"}, // encoding/json would take it, case-insensitively
		{`{"metadata":{"name":"a","namespac":"b"}}`, "metadata.namespac"},
		{`{"metadata":{"Name":"a"}}`, "metadata.Name"},
		{`{"dns_config":{"server":["1.1.1.1"]}}`, "dns_config.server"},
		{`{"port_mappings":[{"container_port":80},{"hostPort":80}]}`, "port_mappings[1].hostPort"},
		{`{"linux":{"cgroupParent":"/a"}}`, "linux.cgroupParent"},
		{`{"linux":{"security_context":{"netwrok":2}}}`, "linux.security_context.netwrok"},
		{`{"linux":{"security_context":{"namespace_options":{"user":2}}}}`, "linux.security_context.namespace_options.user"},
		{`{"linux":{"security_context":{"run_as_user":{"value":1,"name":"x"}}}}`, "linux.security_context.run_as_user.name"},
		{`{"linux":{"security_context":{"seccomp":{"localhostRef":"/a"}}}}`, "linux.security_context.seccomp.localhostRef"},
		{`{"linux":{"security_context":{"selinux_options":{"range":"s0"}}}}`, "linux.security_context.selinux_options.range"},
		{`{"linux":{"resources":{"hugepage_limits":[{"page_size":"2MB","pagesize":"x"}]}}}`, "linux.resources.hugepage_limits[0].pagesize"},
		{`{"linux":{"overhead":{"memory":1}}}`, "linux.overhead.memory"},
		// The first unknown field in sorted order is the one reported.
		{`{"zzz":1,"aaa":1,"metadata":{}}`, "aaa"},
	} {
		_, err := pod.Decode([]byte(tc.in))
		de := requireDecodeError(t, err, tc.field, tc.in)
		assert.Contains(t, de.Error(), tc.field, tc.in)
	}

	// In YAML as well.
	_, err := pod.Decode([]byte("metadata:\n  name: a\nlinux:\n  security_context:\n    netwrok: 2\n"))
	requireDecodeError(t, err, "linux.security_context.netwrok")
	_, err = pod.Decode([]byte("dns_config:\n  servers: [1.1.1.1]\n  serch: [a]\n"))
	requireDecodeError(t, err, "dns_config.serch")

	// Keys of the free-form maps are data, not fields.
	c, err := pod.Decode([]byte(`{
		"labels": {"netwrok": "x", "Metadata": "y"},
		"annotations": {"whatever/you.like": "z"},
		"linux": {"sysctls": {"net.core.somaxconn": "1024"}, "resources": {"unified": {"anything": "1"}}}
	}`))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"netwrok": "x", "Metadata": "y"}, c.Labels)
	assert.Equal(t, map[string]string{"whatever/you.like": "z"}, c.Annotations)
	assert.Equal(t, map[string]string{"anything": "1"}, c.Linux.Resources.Unified)
}

func TestDecodeConfigWrongTypes(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{`{"metadata":"web"}`, "metadata"},
		{`{"metadata":{"name":7}}`, "metadata.name"},
		{`{"metadata":{"attempt":-1}}`, "metadata.attempt"},
		{`{"metadata":{"attempt":4294967296}}`, "metadata.attempt"},
		{`{"metadata":{"attempt":"1"}}`, "metadata.attempt"},
		{`{"hostname":["a"]}`, "hostname"},
		{`{"dns_config":{"servers":"1.1.1.1"}}`, "dns_config.servers"},
		{`{"port_mappings":{"container_port":80}}`, "port_mappings"},
		{`{"labels":["a"]}`, "labels"},
		{`{"linux":[]}`, "linux"},
		{`{"linux":{"security_context":{"privileged":"true"}}}`, "linux.security_context.privileged"},
		{`{"linux":{"security_context":{"run_as_user":1000}}}`, "linux.security_context.run_as_user"},
		{`{"linux":{"security_context":{"run_as_user":{"value":1.5}}}}`, "linux.security_context.run_as_user.value"},
		{`{"linux":{"security_context":{"run_as_user":{"value":"0"}}}}`, "linux.security_context.run_as_user.value"},
		{`{"linux":{"overhead":{"cpu_shares":9223372036854775808}}}`, "linux.overhead.cpu_shares"},
	} {
		_, err := pod.Decode([]byte(tc.in))
		requireDecodeError(t, err, tc.field, tc.in)
	}
}

// A value of the wrong type inside a list or a map must be reported at its
// full path, with the index or key, like every other DecodeError (and like
// the Problems of Plan).
func TestDecodeConfigWrongTypePathHasIndexAndKey(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{`{"port_mappings":[{"container_port":80},{"container_port":"8080"}]}`, "port_mappings[1].container_port"},
		{`{"dns_config":{"servers":["1.1.1.1",8]}}`, "dns_config.servers[1]"},
		{`{"linux":{"security_context":{"supplemental_groups":[1,"x"]}}}`, "linux.security_context.supplemental_groups[1]"},
		{`{"linux":{"resources":{"hugepage_limits":[{"limit":"1Gi"}]}}}`, "linux.resources.hugepage_limits[0].limit"},
		{`{"labels":{"app":1}}`, `labels["app"]`},
		{`{"linux":{"sysctls":{"net.core.somaxconn":1024}}}`, `linux.sysctls["net.core.somaxconn"]`},
	} {
		_, err := pod.Decode([]byte(tc.in))
		requireDecodeError(t, err, tc.field, tc.in)
	}
}

func TestDecodeConfigMalformed(t *testing.T) {
	for name, in := range map[string]string{
		"empty":                      "",
		"blank":                      " \n\t\n",
		"invalid JSON":               `{"metadata":{"name":"a"}`,
		"invalid JSON key":           `{metadata:{}}`,
		"invalid YAML":               "metadata:\n  name: a\n bad: [\n",
		"YAML tab indentation":       "metadata:\n\tname: a\n",
		"JSON array":                 `[{"metadata":{}}]`,
		"YAML list":                  "- metadata: {}\n",
		"JSON null":                  "null",
		"JSON string":                `"metadata"`,
		"JSON number":                "42",
		"trailing object":            `{"metadata":{"name":"a"}} {"hostname":"x"}`,
		"trailing brace":             `{"metadata":{"name":"a"}}}`,
		"trailing bracket":           `{"metadata":{"name":"a"}}]`,
		"trailing garbage":           `{"metadata":{"name":"a"}} x`,
		"nested too deep":            strings.Repeat(`{"labels":`, 20000) + strings.Repeat("}", 20000),
		"one byte over the limit":    `{"labels":{"a":"` + strings.Repeat("x", maxConfigSize-len(`{"labels":{"a":""}}`)+1) + `"}}`,
		"over the limit, whitespace": "{}" + strings.Repeat(" ", maxConfigSize),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := pod.Decode([]byte(in))
			assert.Nil(t, c)
			requireDecodeError(t, err, "")
		})
	}
}

// A YAML stream of several documents is trailing data too: the second
// document must not be silently dropped (it could hold the settings the
// user meant, or a typo that would otherwise be an error).
func TestDecodeConfigYAMLTrailingDocument(t *testing.T) {
	for name, in := range map[string]string{
		"second document":     "metadata:\n  name: a\n---\nlinux:\n  security_context:\n    privileged: true\n",
		"second with unknown": "metadata:\n  name: a\n---\nnetwrok: 2\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := pod.Decode([]byte(in))
			assert.Nil(t, c)
			requireDecodeError(t, err, "")
		})
	}
	// A leading "---" or a final "..." is one document.
	c, err := pod.Decode([]byte("---\nmetadata:\n  name: a\n...\n"))
	require.NoError(t, err)
	assert.Equal(t, "a", c.Metadata.Name)
}

func TestDecodeConfigSizeLimit(t *testing.T) {
	prefix, suffix := `{"labels":{"a":"`, `"}}`
	exact := prefix + strings.Repeat("x", maxConfigSize-len(prefix)-len(suffix)) + suffix
	require.Len(t, exact, maxConfigSize)
	c, err := pod.Decode([]byte(exact))
	require.NoError(t, err, "a config of exactly the limit decodes")
	assert.Len(t, c.Labels["a"], maxConfigSize-len(prefix)-len(suffix))

	de := requireDecodeError(t, func() error { _, err := pod.Decode([]byte(exact + " ")); return err }(), "")
	assert.Contains(t, de.Reason, "4194304")
	assert.Equal(t, maxConfigSize, pod.MaxSize)
}

func TestDecodeConfigEmptyObjectIsNotValidated(t *testing.T) {
	// Decode decodes; Plan validates.
	c, err := pod.Decode([]byte(" {} \n"))
	require.NoError(t, err)
	assert.Equal(t, &pod.Config{}, c)
	c, err = pod.Decode([]byte(`{"metadata":{"name":"../../etc"},"linux":{"sysctls":{"kernel.panic":"1"}}}`))
	require.NoError(t, err)
	assert.Equal(t, "../../etc", c.Metadata.Name)
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()

	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(dir, "nope.json")
		c, err := pod.Load(path)
		assert.Nil(t, c)
		require.ErrorIs(t, err, fs.ErrNotExist)
		assert.NotErrorIs(t, err, pod.ErrInvalid)
		assert.Contains(t, err.Error(), path)
	})

	t.Run("a directory", func(t *testing.T) {
		c, err := pod.Load(dir)
		assert.Nil(t, c)
		require.ErrorIs(t, err, pod.ErrInvalid)
		var de *pod.DecodeError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, dir, de.File)
	})

	for name, content := range map[string]struct{ data, field string }{
		"bad JSON":      {`{"metadata":`, ""},
		"unknown field": {`{"metadata":{"nmae":"a"}}`, "metadata.nmae"},
		"bad YAML enum": {"port_mappings:\n- protocol: icmp\n", "port_mappings[0].protocol"},
		"empty":         {"", ""},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
			require.NoError(t, os.WriteFile(path, []byte(content.data), 0o644))
			c, err := pod.Load(path)
			assert.Nil(t, c)
			require.ErrorIs(t, err, pod.ErrInvalid)
			var de *pod.DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, path, de.File)
			assert.Equal(t, content.field, de.Field)
			assert.Contains(t, err.Error(), path)
		})
	}

	t.Run("too large", func(t *testing.T) {
		path := filepath.Join(dir, "big.json")
		require.NoError(t, os.WriteFile(path, append([]byte("{}"), bytes.Repeat([]byte(" "), maxConfigSize)...), 0o644))
		_, err := pod.Load(path)
		var de *pod.DecodeError
		require.ErrorAs(t, err, &de)
		assert.Equal(t, path, de.File)
	})
}

// Load refuses what is not a regular file: typed, without blocking
// (a FIFO without a writer blocked its open forever) and without reading
// from it (it read a FIFO until its writer closed, and /dev/zero to the
// size limit).
func TestLoadConfigRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pod.json")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	lone := filepath.Join(dir, "lone.json") // a FIFO that nobody writes to
	require.NoError(t, syscall.Mkfifo(lone, 0o600))
	// A FIFO with a config waiting in it, and its writer still there (opening
	// it read-write does not wait for a reader).
	rw, err := os.OpenFile(fifo, os.O_RDWR, 0)
	require.NoError(t, err)
	defer rw.Close()
	_, err = rw.WriteString("{}")
	require.NoError(t, err)
	// A socket (its path short enough for a sockaddr_un).
	sockDir, err := os.MkdirTemp("", "pod")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "s")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer l.Close()

	paths := map[string]string{"FIFO with a writer": fifo, "FIFO without a writer": lone, "directory": dir, "socket": sock}
	for _, dev := range []string{"/dev/zero", "/dev/null"} {
		if _, err := os.Stat(dev); err == nil {
			paths[dev] = dev
		}
	}
	for name, path := range paths {
		t.Run(name, func(t *testing.T) {
			type result struct {
				c   *pod.Config
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := pod.Load(path)
				done <- result{c, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Load(%s) blocks", path) // and its goroutine stays blocked
			}
			assert.Nil(t, r.c)
			require.ErrorIs(t, r.err, pod.ErrInvalid)
			var de *pod.DecodeError
			require.ErrorAs(t, r.err, &de)
			assert.Equal(t, path, de.File)
			assert.Contains(t, de.Reason, "not a regular file")
		})
	}

	// The config is still in the FIFO, for its reader.
	require.NoError(t, rw.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 2)
	_, err = io.ReadFull(rw, buf)
	require.NoError(t, err)
	assert.Equal(t, "{}", string(buf))
}

// Reading standard input (crictl's "-") is the caller's: it reads at most
// MaxSize+1 bytes and decodes them.
func TestDecodeConfigFromAPipe(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "pod-config.yaml"))
	require.NoError(t, err)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	go func() {
		defer w.Close()
		w.Write(data)
	}()
	in, err := io.ReadAll(io.LimitReader(r, pod.MaxSize+1))
	require.NoError(t, err)
	c, err := pod.Decode(in)
	require.NoError(t, err)
	assert.Equal(t, crictlPod(), c)
}

// A JSON object with a key twice must not decode to something the field
// check never saw: either it is refused, or the last value wins, as in
// YAML (and most JSON readers) — not a merge of both values, which makes
// `"linux":{}` after a privileged "linux" still privileged.
func TestDecodeConfigDuplicateKeys(t *testing.T) {
	for _, tc := range []struct{ in, lastWins string }{
		{`{"linux":{"security_context":{"privileged":true}},"linux":{}}`, `{"linux":{}}`},
		{`{"metadata":{"name":"a"},"metadata":{"uid":"b"}}`, `{"metadata":{"uid":"b"}}`},
		{`{"metadata":{"nmae":"a"},"metadata":{"name":"b"}}`, `{"metadata":{"name":"b"}}`},
		{`{"linux":{"security_context":{"namespace_options":{"network":2}}},"linux":{"cgroup_parent":"/a"}}`, `{"linux":{"cgroup_parent":"/a"}}`},
	} {
		c, err := pod.Decode([]byte(tc.in))
		if err != nil {
			requireDecodeError(t, err, decodeErrOf(err).Field, tc.in)
			continue
		}
		want, err := pod.Decode([]byte(tc.lastWins))
		require.NoError(t, err)
		assert.Equal(t, want, c, "%s decodes to a merge of its duplicate keys", tc.in)
	}

	// YAML: the last value wins.
	c, err := pod.Decode([]byte("linux:\n  security_context:\n    privileged: true\nlinux: {}\n"))
	if err == nil {
		assert.False(t, c.Privileged())
	}
}

func decodeErrOf(err error) *pod.DecodeError {
	var d *pod.DecodeError
	errors.As(err, &d)
	if d == nil {
		return &pod.DecodeError{}
	}
	return d
}

func TestDecodeConfigRefusesDuplicateKeys(t *testing.T) {
	for in, field := range map[string]string{
		`{"metadata":{"name":"x","name":"y"}}`:                                 "metadata.name",
		`{"linux":{"security_context":{"privileged":true}},"linux":{}}`:        "linux",
		`{"port_mappings":[{"host_port":1},{"host_port":1,"host_port":2}]}`:    "port_mappings[1].host_port",
		`{"labels":{"a":"1","b":"2","a":"3"}}`:                                 `labels["a"]`,
		`{"dns_config":{"servers":["1.1.1.1"]},"labels":{},"dns_config":null}`: "dns_config",
		// The value replaced is of the wrong type, or has a duplicate inside.
		`{"metadata":{"name":1},"metadata":{}}`:                    "metadata",
		`{"labels":{"a":{"b":1,"b":2}},"labels":{}}`:               "labels",
		`{"linux":{"sysctls":{"a.b":"1","a.b":"2"}}}`:              `linux.sysctls["a.b"]`,
		`{"port_mappings":[{},{"protocol":"x","protocol":"TCP"}]}`: "port_mappings[1].protocol",
	} {
		_, err := pod.Decode([]byte(in))
		requireDecodeError(t, err, field, in)
		assert.Contains(t, err.Error(), "duplicate key", in)
	}
	_, err := pod.Decode([]byte("metadata:\n  name: a\n  name: b\n"))
	require.ErrorIs(t, err, pod.ErrInvalid)
	assert.Contains(t, err.Error(), "already")
}

// fill repeats unit between prefix and suffix to about size bytes.
func fill(prefix, unit, suffix string, size int) string {
	return prefix + strings.Repeat(unit, (size-len(prefix)-len(suffix))/len(unit)) + suffix
}

// Deep nesting is refused before any parser allocates per level: it cost
// memory in the square of the depth (80 KB of "[" in labels took 4 GB, 2 MB
// was killed for want of memory).
func TestDecodeConfigDeepNesting(t *testing.T) {
	const n = 100000
	for name, in := range map[string]string{
		"JSON arrays":        `{"labels":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`,
		"JSON objects":       strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n),
		"JSON unclosed":      `{"labels":` + strings.Repeat("[", n),
		"JSON, 2 MB":         `{"labels":` + strings.Repeat("[", 1<<20-6) + strings.Repeat("]", 1<<20-6) + `}`,
		"YAML flow":          "labels: " + strings.Repeat("[", n) + strings.Repeat("]", n),
		"YAML flow mappings": "labels: " + strings.Repeat("{a: ", n) + "1" + strings.Repeat("}", n),
		"YAML flow unclosed": "labels: " + strings.Repeat("[", n),
		"YAML block":         "labels:\n" + strings.Repeat("- ", n) + "x\n",
		"YAML, 2 MB":         "labels: " + strings.Repeat("[", 1<<20-6) + strings.Repeat("]", 1<<20-6),
	} {
		t.Run(name, func(t *testing.T) {
			data := []byte(in)
			var err error
			n := testutil.Allocated(func() { _, err = pod.Decode(data) })
			requireDecodeError(t, err, "")
			assert.Less(t, n, uint64(64<<10), "Decode allocated %d bytes", n)
		})
	}

	// The bound is 32 levels, the top-level object included.
	_, err := pod.Decode([]byte(`{"labels":{"a":` + strings.Repeat("[", 30) + strings.Repeat("]", 30) + `}}`))
	de := requireDecodeError(t, err, `labels["a"]`)
	assert.NotContains(t, de.Reason, "nested")
	_, err = pod.Decode([]byte(`{"labels":{"a":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}}`))
	de = requireDecodeError(t, err, "")
	assert.Contains(t, de.Reason, "nested more than 32 levels")
	// Brackets in strings are not nesting.
	c, err := pod.Decode([]byte(`{"labels":{"a":"` + strings.Repeat(`[{\"\\`, n) + `"}}`))
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat(`[{"\`, n), c.Labels["a"])

	// YAML nested within the YAML bounds is parsed, then refused.
	var indented strings.Builder
	for i := range 1000 {
		indented.WriteString(strings.Repeat(" ", i) + "a:\n")
	}
	for name, in := range map[string]string{
		"flow":        "labels: " + strings.Repeat("[", 8000) + strings.Repeat("]", 8000),
		"indentation": indented.String(),
	} {
		data := []byte(in)
		n := testutil.Allocated(func() { _, err = pod.Decode(data) })
		de := requireDecodeError(t, err, "", name)
		assert.Contains(t, de.Reason, "nested", name)
		assert.Less(t, n, uint64(50<<20), "%s: Decode allocated %d bytes", name, n)
	}
}

// Whatever its shape, a config under the size limit decodes, or is refused,
// in under 50 MB. A YAML node costs hundreds of bytes, an alias can expand
// to a hundred thousand nodes, and a JSON value tens of bytes.
func TestDecodeConfigCostIsBounded(t *testing.T) {
	var labels, yamlLabels strings.Builder
	labels.WriteString(`{"labels":{`)
	for i := range 8000 {
		fmt.Fprintf(&labels, `"%d%s":"%s",`, i, strings.Repeat("k", 240), strings.Repeat("v", 240))
	}
	labels.WriteString(`"k":"v"}}`)
	yamlLabels.WriteString("labels:\n")
	for i := range 8000 {
		fmt.Fprintf(&yamlLabels, "  %d: x\n", i)
	}
	aliases := "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
	for _, c := range "bcdefgh" {
		aliases += fmt.Sprintf("%c: &%c [%s*%c]\n", c, c, strings.Repeat("*"+string(c-1)+",", 9), c-1)
	}
	for name, tc := range map[string]struct {
		in      string
		refused string // what the reason mentions, if it is refused
	}{
		"JSON list of 2M numbers":      {fill(`{"linux":{"security_context":{"supplemental_groups":[`, "0,", "0]}}}", maxConfigSize), "16384 values"},
		"JSON list of 1.4M strings":    {fill(`{"dns_config":{"servers":[`, `"",`, `""]}}`, maxConfigSize), "16384 values"},
		"JSON list of 16000 numbers":   {fill(`{"linux":{"security_context":{"supplemental_groups":[`, "0,", "0]}}}", 32000), ""},
		"JSON 8000 labels of 500 B":    {labels.String(), ""},
		"JSON string of 4 MB":          {fill(`{"labels":{"a":"`, "x", `"}}`, maxConfigSize), ""},
		"JSON string of 4 MB, escaped": {fill(`{"labels":{"a":"`, `\u00e9`, `"}}`, maxConfigSize), ""},
		"JSON 4 MB of the wrong type":  {fill(`{"labels":{"a":["`, "x", `"]}}`, maxConfigSize), "must be a string"},
		"JSON 16000 duplicate keys":    {fill(`{"labels":{`, `"a":"",`, `"a":""}}`, 7*16000), "duplicate key"},
		"YAML list of 2M numbers":      {fill("linux: {security_context: {supplemental_groups: [", "0,", "0]}}", maxConfigSize), "1048576 bytes"},
		"YAML list of 500k numbers":    {fill("linux: {security_context: {supplemental_groups: [", "0,", "0]}}", 1<<20), "8192 of the bytes"},
		"YAML list of 8000 numbers":    {fill("linux: {security_context: {supplemental_groups: [", "0,", "0]}}", 16000), ""},
		"YAML 8000 labels":             {yamlLabels.String(), ""},
		"YAML string of 1 MB":          {fill(`labels: {a: "`, "x", `"}`, 1<<20), ""},
		"YAML block scalar of 1 MB":    {fill("labels:\n  a: |\n", "    "+strings.Repeat("x", 60)+"\n", "", 1<<20), ""},
		"YAML 4000 mappings":           {fill("labels: [", "{a},", "{a}]", 16000), "must be an object"},
		"YAML aliases":                 {aliases, "aliases"},
	} {
		t.Run(name, func(t *testing.T) {
			data := []byte(tc.in)
			require.LessOrEqual(t, len(data), maxConfigSize)
			var err error
			n := testutil.Allocated(func() { _, err = pod.Decode(data) })
			if tc.refused == "" {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, pod.ErrInvalid)
				assert.Contains(t, decodeErrOf(err).Reason, tc.refused)
			}
			assert.Less(t, n, uint64(50<<20), "Decode allocated %d bytes", n)
		})
	}
}

// Anchors and aliases are refused, not expanded; an & or a * alone is data.
func TestDecodeConfigYAMLAliases(t *testing.T) {
	for _, in := range []string{
		"annotations: &a {a: b}\nlabels: *a\n",
		"linux:\n  overhead: &r {cpu_shares: 2}\n  resources:\n    <<: *r\n",
		"\xef\xbb\xbf*a: &a x\n",
	} {
		_, err := pod.Decode([]byte(in))
		de := requireDecodeError(t, err, "", in)
		assert.Contains(t, de.Reason, "aliases", in)
	}
	c, err := pod.Decode([]byte("annotations:\n  a: Tom & Jerry\n  b: '*.example.com'\n  c: x*y&z\n"))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "Tom & Jerry", "b": "*.example.com", "c": "x*y&z"}, c.Annotations)
}

// A second YAML document is found without a parser, wherever a line starts.
func TestDecodeConfigYAMLDocuments(t *testing.T) {
	for name, in := range map[string]string{
		"empty second document":     "metadata: {name: a}\n---\n",
		"after an end marker":       "metadata: {name: a}\n...\nlinux: {}\n",
		"end and start":             "metadata: {name: a}\n...\n---\nlinux: {}\n",
		"two starts":                "---\nmetadata: {name: a}\n--- {}\n",
		"carriage returns":          "metadata: {name: a}\r---\rlinux: {}\r",
		"next lines (U+0085)":       "metadata: {name: a}\u0085---\u0085linux: {}",
		"line separators (U+2028)":  "metadata: {name: a}\u2028---\u2028linux: {}",
		"marker then tab":           "metadata: {name: a}\n---\t{}\n",
		"marker in a quoted string": "hostname: \"a\n---\nb\"\n",
		"UTF-16":                    "\xff\xfem\x00:\x00 \x00{\x00}\x00",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := pod.Decode([]byte(in))
			assert.Nil(t, c)
			requireDecodeError(t, err, "")
		})
	}
	for name, in := range map[string]string{
		"start marker":            "---\nhostname: a\n",
		"start and end markers":   "# pod\n---\nhostname: a\n...\n# end\n",
		"directive":               "%YAML 1.1\n---\nhostname: a\n",
		"byte order mark":         "\xef\xbb\xbf---\nhostname: a\n",
		"dashes in a scalar":      "hostname: a\nannotations:\n  a: |\n    ---\n    ...\n  b: ---x\n",
		"dashes after indent":     "hostname: a\nannotations:\n  a: >\n   --- x\n",
		"marker-like in a string": "annotations: {a: \"--- \"}\nhostname: a\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := pod.Decode([]byte(in))
			require.NoError(t, err)
			assert.Equal(t, "a", c.Hostname)
		})
	}
}

// What an error echoes of the input is cut to a short, printable prefix:
// given a shadow file, it echoed a whole line, password hash included.
func TestDecodeErrorEchoesAShortPrintablePrefix(t *testing.T) {
	hash := "$y$j9T$PKdDWBqQpGzgLmm8KTvmL.$" + strings.Repeat("Q7xkz3vBd0", 4) + "abc"
	shadow := filepath.Join(t.TempDir(), "shadow")
	require.NoError(t, os.WriteFile(shadow, []byte("root:"+hash+":19500:0:99999:7:::\ndaemon:*:19500:0:99999:7:::\n"), 0o600))
	_, err := pod.Load(shadow)
	require.ErrorIs(t, err, pod.ErrInvalid)
	assert.NotContains(t, err.Error(), hash[len(hash)-40:])

	long := strings.Repeat("x", 1000)
	for _, in := range []string{
		"root:" + hash + ":19500:0:99999:7:::\n",
		`{"` + long + `":1}`,
		`{"metadata":{"` + long + `":1}}`,
		`{"a\u001b[31m` + long + `":1}`,
		`{"labels":{"` + long + `":1}}`,
		`{"labels":{"` + long + `":"","` + long + `":""}}`,
		`{"port_mappings":[{"protocol":"` + long + `"}]}`,
		`{"port_mappings":[{"protocol":"\u001b[31m"}]}`,
		`{"metadata":{"attempt":` + strings.Repeat("9", 1000) + `}}`,
		"labels:\n  " + long + ": a\n  " + long + ": b\n",
		"labels: *" + long + "\n",
		"labels: {" + strings.Repeat("a: 1, ", 3000) + "}\n",
		"linux: {security_context: {namespace_options: {network: " + long + "}}}\n",
	} {
		_, err := pod.Decode([]byte(in))
		de := decodeErrOf(err)
		require.ErrorIs(t, err, pod.ErrInvalid, in)
		msg := de.Error()
		assert.NotContains(t, msg, strings.Repeat("x", 33), in)
		assert.NotContains(t, msg, "999999999999999999999999999999999", in)
		assert.Less(t, len(de.Field), 64, in)
		assert.Less(t, len(msg), 400, in)
		assert.True(t, strings.IndexFunc(msg, func(r rune) bool { return !strconv.IsPrint(r) }) < 0, "%q", msg)
	}
}
