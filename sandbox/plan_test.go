package sandbox_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
	"github.com/podsmith/podsmith/spec"
)

const (
	planNode = "node-1" // the node's hostname in these tests
	planUID  = "7f0c2c4e-2b1d-4c5e-9a8b-0123456789ab"
)

// planPod is a valid pod config with nothing optional set.
func planPod() *pod.Config {
	return &pod.Config{Metadata: pod.Metadata{Name: "web", Namespace: "default", UID: planUID}}
}

// planSC returns c's security context, creating what is missing.
func planSC(c *pod.Config) *pod.SecurityContext {
	if c.Linux == nil {
		c.Linux = &pod.LinuxConfig{}
	}
	if c.Linux.SecurityContext == nil {
		c.Linux.SecurityContext = &pod.SecurityContext{}
	}
	return c.Linux.SecurityContext
}

// planNS returns c's namespace options, creating what is missing.
func planNS(c *pod.Config) *pod.NamespaceOptions {
	sc := planSC(c)
	if sc.NamespaceOptions == nil {
		sc.NamespaceOptions = &pod.NamespaceOptions{}
	}
	return sc.NamespaceOptions
}

func planLinux(c *pod.Config) *pod.LinuxConfig {
	if c.Linux == nil {
		c.Linux = &pod.LinuxConfig{}
	}
	return c.Linux
}

func planBuilder(t testing.TB, opts sandbox.Options) (*sandbox.Builder, *sandboxtest.Host) {
	t.Helper()
	if opts.NodeHostname == nil {
		opts.NodeHostname = func() (string, error) { return planNode, nil }
	}
	return sandboxtest.NewBuilder(t, opts)
}

// realTempDir is t.TempDir() with its symlinks resolved (on macOS it is
// under /var, a symlink), for log directories that must have none.
func realTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	return dir
}

// requireConfigError checks that err is a *ConfigError matching
// ErrInvalidConfig whose every problem has a reason, and returns it.
func requireConfigError(t *testing.T, err error) *sandbox.ConfigError {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, sandbox.ErrInvalidConfig)
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	require.NotEmpty(t, ce.Problems)
	for _, p := range ce.Problems {
		assert.NotEmpty(t, p.Reason, "problem %q has no reason", p.Field)
	}
	return ce
}

func problemFields(ce *sandbox.ConfigError) []string {
	var fields []string
	for _, p := range ce.Problems {
		fields = append(fields, p.Field)
	}
	slices.Sort(fields)
	return fields
}

// under reports whether path is dir or inside it, lexically.
func under(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsAbs(path) && filepath.Clean(path) == path &&
		rel != ".." && !strings.HasPrefix(rel, "../")
}

type planCase struct {
	name  string
	edit  func(c *pod.Config)
	field string
	// check, if set, looks further at the error (the leaf error, say).
	check func(t *testing.T, err error, p *sandbox.Problem)
}

func leafIs(target error) func(*testing.T, error, *sandbox.Problem) {
	return func(t *testing.T, err error, p *sandbox.Problem) {
		assert.ErrorIs(t, err, target)
		assert.ErrorIs(t, p, target)
	}
}

func leafAs[E error]() func(*testing.T, error, *sandbox.Problem) {
	return func(t *testing.T, err error, p *sandbox.Problem) {
		var e E
		assert.ErrorAs(t, err, &e)
		assert.ErrorAs(t, p, &e)
	}
}

func mentions(s string) func(*testing.T, error, *sandbox.Problem) {
	return func(t *testing.T, err error, p *sandbox.Problem) {
		assert.Contains(t, p.Error(), s)
		assert.Contains(t, err.Error(), s)
	}
}

// planCases are configs with exactly one problem each, at field.
func planCases(t *testing.T) []planCase {
	dir := realTempDir(t)

	// A log directory tree with a symlink and a file in it.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "logs", "real"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(dir, "logs", "real"), filepath.Join(dir, "logs", "link")))
	require.NoError(t, os.Symlink("/etc", filepath.Join(dir, "logs", "escape")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "logs", "file"), nil, 0o644))

	// Seccomp profiles.
	missing := filepath.Join(dir, "seccomp", "missing.json")
	badJSON := filepath.Join(dir, "seccomp", "bad.json")
	dockerFormat := filepath.Join(dir, "seccomp", "docker.json")
	badAction := filepath.Join(dir, "seccomp", "action.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(badJSON), 0o755))
	require.NoError(t, os.WriteFile(badJSON, []byte(`{"defaultAction":`), 0o644))
	require.NoError(t, os.WriteFile(dockerFormat, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[]}`), 0o644))
	require.NoError(t, os.WriteFile(badAction, []byte(`{"defaultAction":"SCMP_ACT_MAYBE"}`), 0o644))

	const (
		sc     = "linux.security_context."
		nsOpts = sc + "namespace_options."
	)
	long := func(n int) string { return strings.Repeat("a", n) }
	sec := func(c *pod.Config) *pod.SecurityContext { return planSC(c) }
	ann := func(k, v string) func(c *pod.Config) {
		return func(c *pod.Config) { c.Annotations = map[string]string{k: v} }
	}
	lbl := func(k, v string) func(c *pod.Config) {
		return func(c *pod.Config) { c.Labels = map[string]string{k: v} }
	}
	ports := func(pms ...pod.PortMapping) func(c *pod.Config) {
		return func(c *pod.Config) { c.PortMappings = pms }
	}
	dnsc := func(d pod.DNSConfig) func(c *pod.Config) {
		return func(c *pod.Config) { c.DNSConfig = &d }
	}
	sysctls := func(kv ...string) func(c *pod.Config) {
		return func(c *pod.Config) {
			m := map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			planLinux(c).Sysctls = m
		}
	}
	hostNet := func(c *pod.Config) { planNS(c).Network = pod.NamespaceNode }
	hostIPC := func(c *pod.Config) { planNS(c).Ipc = pod.NamespaceNode }
	both := func(fs ...func(c *pod.Config)) func(c *pod.Config) {
		return func(c *pod.Config) {
			for _, f := range fs {
				f(c)
			}
		}
	}
	seccomp := func(typ pod.ProfileType, ref string) func(c *pod.Config) {
		return func(c *pod.Config) {
			sec(c).Seccomp = &pod.SecurityProfile{ProfileType: typ, LocalhostRef: ref}
		}
	}
	seccompPath := func(p string) func(c *pod.Config) {
		return func(c *pod.Config) { sec(c).SeccompProfilePath = p }
	}
	shm := func(v string) func(c *pod.Config) { return ann(pod.ShmSizeAnnotation, v) }
	shmField := fmt.Sprintf("annotations[%q]", pod.ShmSizeAnnotation)
	tcp := func(container, host int32) pod.PortMapping {
		return pod.PortMapping{ContainerPort: container, HostPort: host}
	}
	bigValues := func(c *pod.Config) {
		c.Annotations = map[string]string{}
		for i := range 5 {
			c.Annotations[fmt.Sprintf("a%d", i)] = strings.Repeat("v", 60<<10)
		}
	}

	return []planCase{
		// metadata
		{"name required", func(c *pod.Config) { c.Metadata.Name = "" }, "metadata.name", nil},
		{"namespace required", func(c *pod.Config) { c.Metadata.Namespace = "" }, "metadata.namespace", nil},
		{"uid required", func(c *pod.Config) { c.Metadata.UID = "" }, "metadata.uid", nil},
		{"name too long", func(c *pod.Config) { c.Metadata.Name = long(254) }, "metadata.name", nil},
		{"namespace too long", func(c *pod.Config) { c.Metadata.Namespace = long(64) }, "metadata.namespace", nil},
		{"uid too long", func(c *pod.Config) { c.Metadata.UID = long(129) }, "metadata.uid", nil},
		{"name ..", func(c *pod.Config) { c.Metadata.Name = ".." }, "metadata.name", nil},
		{"name .", func(c *pod.Config) { c.Metadata.Name = "." }, "metadata.name", nil},
		{"namespace a/b", func(c *pod.Config) { c.Metadata.Namespace = "a/b" }, "metadata.namespace", nil},
		{"uid NUL", func(c *pod.Config) { c.Metadata.UID = "a\x00" }, "metadata.uid", nil},
		{"name _x", func(c *pod.Config) { c.Metadata.Name = "_x" }, "metadata.name", nil},
		{"name with the name separator", func(c *pod.Config) { c.Metadata.Name = "a_b" }, "metadata.name", nil},
		{"name leading -", func(c *pod.Config) { c.Metadata.Name = "-web" }, "metadata.name", nil},
		{"namespace leading .", func(c *pod.Config) { c.Metadata.Namespace = ".ns" }, "metadata.namespace", nil},
		{"uid space", func(c *pod.Config) { c.Metadata.UID = "a b" }, "metadata.uid", nil},
		{"name non-ASCII", func(c *pod.Config) { c.Metadata.Name = "wéb" }, "metadata.name", nil},

		// log_directory
		{"log dir relative", func(c *pod.Config) { c.LogDirectory = "var/log/pods" }, "log_directory", nil},
		{"log dir not clean", func(c *pod.Config) { c.LogDirectory = "/a/../b" }, "log_directory", nil},
		{"log dir trailing slash", func(c *pod.Config) { c.LogDirectory = "/var/log/" }, "log_directory", nil},
		{"log dir NUL", func(c *pod.Config) { c.LogDirectory = "/var/log\x00/x" }, "log_directory", nil},
		{"log dir newline", func(c *pod.Config) { c.LogDirectory = "/var/log/\npods" }, "log_directory", nil},
		{"log dir too long", func(c *pod.Config) { c.LogDirectory = "/" + long(4096) }, "log_directory", nil},
		{"log dir component too long", func(c *pod.Config) { c.LogDirectory = "/" + long(300) }, "log_directory", nil},
		{"log dir symlink component", func(c *pod.Config) { c.LogDirectory = filepath.Join(dir, "logs", "link", "pod") }, "log_directory", mentions("symlink")},
		{"log dir is a symlink", func(c *pod.Config) { c.LogDirectory = filepath.Join(dir, "logs", "escape") }, "log_directory", mentions("symlink")},
		{"log dir under a file", func(c *pod.Config) { c.LogDirectory = filepath.Join(dir, "logs", "file", "pod") }, "log_directory", mentions("not a directory")},
		{"log dir is a file", func(c *pod.Config) { c.LogDirectory = filepath.Join(dir, "logs", "file") }, "log_directory", nil},

		// dns_config
		{"dns 4 servers", dnsc(pod.DNSConfig{Servers: []string{"1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"}}), "dns_config.servers", func(t *testing.T, err error, p *sandbox.Problem) {
			leafAs[*dns.ValidationError]()(t, err, p)
			assert.Equal(t, "4 nameservers, at most 3 allowed", p.Reason, "no empty value quoted before the reason")
		}},
		{"dns server injection", dnsc(pod.DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}}), "dns_config.servers[0]", leafIs(dns.ErrInvalid)},
		{"dns server not an IP", dnsc(pod.DNSConfig{Servers: []string{"1.1.1.1", "dns.example"}}), "dns_config.servers[1]", mentions("dns.example")},
		{"dns server empty", dnsc(pod.DNSConfig{Servers: []string{""}}), "dns_config.servers[0]", nil},
		{"dns search whitespace", dnsc(pod.DNSConfig{Searches: []string{"ok.example", "a b"}}), "dns_config.searches[1]", leafAs[*dns.ValidationError]()},
		{"dns search comment", dnsc(pod.DNSConfig{Searches: []string{"a#b"}}), "dns_config.searches[0]", nil},
		{"dns 33 searches", dnsc(pod.DNSConfig{Searches: slices.Repeat([]string{"a.example"}, 33)}), "dns_config.searches", nil},
		{"dns search line too long", dnsc(pod.DNSConfig{Searches: slices.Repeat([]string{strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + ".example"}, 17)}), "dns_config.searches", nil},
		{"dns option injection", dnsc(pod.DNSConfig{Options: []string{"ndots:5", "edns0\nnameserver 6.6.6.6"}}), "dns_config.options[1]", nil},
		{"dns option with ;", dnsc(pod.DNSConfig{Options: []string{"a;b"}}), "dns_config.options[0]", nil},

		// port_mappings
		{"port protocol", ports(pod.PortMapping{Protocol: 3, ContainerPort: 80}), "port_mappings[0].protocol", nil},
		{"port protocol negative", ports(tcp(80, 0), pod.PortMapping{Protocol: -1, ContainerPort: 80}), "port_mappings[1].protocol", nil},
		{"container port 0", ports(tcp(0, 0)), "port_mappings[0].container_port", nil},
		{"container port 65536", ports(tcp(80, 0), tcp(65536, 0)), "port_mappings[1].container_port", nil},
		{"container port negative", ports(tcp(-80, 0)), "port_mappings[0].container_port", nil},
		{"host port -1", ports(tcp(80, -1)), "port_mappings[0].host_port", nil},
		{"host port 65536", ports(tcp(80, 65536)), "port_mappings[0].host_port", nil},
		{"host ip x", ports(pod.PortMapping{ContainerPort: 80, HostPort: 80, HostIP: "x"}), "port_mappings[0].host_ip", mentions(`"x"`)},
		{"host ip CIDR", ports(pod.PortMapping{ContainerPort: 80, HostPort: 80, HostIP: "10.0.0.0/8"}), "port_mappings[0].host_ip", nil},
		{"duplicate host port", ports(tcp(80, 8080), tcp(81, 8081), tcp(82, 8080)), "port_mappings[2].host_port", mentions("port_mappings[0]")},
		{"duplicate host port on an IP", ports(
			pod.PortMapping{ContainerPort: 80, HostPort: 8080, HostIP: "127.0.0.1"},
			pod.PortMapping{Protocol: pod.ProtocolUDP, ContainerPort: 80, HostPort: 8080, HostIP: "127.0.0.1"},
			pod.PortMapping{ContainerPort: 81, HostPort: 8080, HostIP: "127.0.0.1"},
		), "port_mappings[2].host_port", nil},
		{"too many port mappings", func(c *pod.Config) {
			for i := range 129 {
				c.PortMappings = append(c.PortMappings, pod.PortMapping{ContainerPort: 80, HostPort: int32(20000 + i)})
			}
		}, "port_mappings", mentions("129 mappings, more than 128")},

		// labels and annotations
		{"label key empty", lbl("", "x"), `labels[""]`, nil},
		{"label key space", lbl("a b", "x"), `labels["a b"]`, nil},
		{"label key colon", lbl("app:name", "x"), `labels["app:name"]`, nil},
		{"label key too long", lbl(long(318), "x"), `labels["` + long(64) + `..."]`, nil},
		{"label value NUL", lbl("app", "a\x00b"), `labels["app"]`, mentions("NUL")},
		{"label value too long", lbl("app", long(64<<10+1)), `labels["app"]`, nil},
		{"annotation key empty", ann("", "x"), `annotations[""]`, nil},
		{"annotation key newline", ann("a\nb", "x"), `annotations["a\nb"]`, nil},
		{"annotation value NUL", ann("k", "\x00"), `annotations["k"]`, nil},
		{"annotations too large", bigValues, "annotations", mentions("262144")},
		{"labels and annotations too large together", func(c *pod.Config) {
			c.Labels = map[string]string{"l": long(60 << 10), "m": long(60 << 10)}
			c.Annotations = map[string]string{"a": long(60 << 10), "b": long(60 << 10), "c": long(60 << 10)}
		}, "annotations", nil},
		{"reserved annotation", ann(spec.AnnotationSandboxID, "x"), fmt.Sprintf("annotations[%q]", spec.AnnotationSandboxID), mentions(spec.AnnotationPrefix)},
		{"reserved annotation prefix", ann("io.podsmith.mine", "x"), `annotations["io.podsmith.mine"]`, nil},

		// namespace modes
		{"network CONTAINER", func(c *pod.Config) { planNS(c).Network = pod.NamespaceContainer }, nsOpts + "network", nil},
		{"network TARGET", func(c *pod.Config) { planNS(c).Network = pod.NamespaceTarget }, nsOpts + "network", nil},
		{"network 9", func(c *pod.Config) { planNS(c).Network = 9 }, nsOpts + "network", nil},
		{"ipc CONTAINER", func(c *pod.Config) { planNS(c).Ipc = pod.NamespaceContainer }, nsOpts + "ipc", nil},
		{"ipc TARGET", func(c *pod.Config) { planNS(c).Ipc = pod.NamespaceTarget }, nsOpts + "ipc", nil},
		{"pid TARGET", func(c *pod.Config) { planNS(c).Pid = pod.NamespaceTarget }, nsOpts + "pid", nil},
		{"pid -1", func(c *pod.Config) { planNS(c).Pid = -1 }, nsOpts + "pid", nil},

		// hostname
		{"hostname Web_1", func(c *pod.Config) { c.Hostname = "Web_1" }, "hostname", leafAs[*dns.ValidationError]()},
		{"hostname uppercase", func(c *pod.Config) { c.Hostname = "Web" }, "hostname", nil},
		{"hostname leading -", func(c *pod.Config) { c.Hostname = "-web" }, "hostname", nil},
		{"hostname empty label", func(c *pod.Config) { c.Hostname = "web..example" }, "hostname", nil},
		{"hostname too long", func(c *pod.Config) { c.Hostname = long(64) }, "hostname", nil},
		{"hostname injection", func(c *pod.Config) { c.Hostname = "web\n127.0.0.1 evil" }, "hostname", leafIs(dns.ErrInvalid)},
		{"hostname with host network", both(hostNet, func(c *pod.Config) { c.Hostname = "other" }), "hostname", mentions(planNode)},

		// shm size
		{"shm size not a size", shm("lots"), shmField, mentions("lots")},
		{"shm size unit only", shm("Mi"), shmField, nil},
		{"shm size empty", shm(""), shmField, nil},
		{"shm size over the cap", shm("9Gi"), shmField, nil},
		{"shm size overflow", shm("9223372036854775807Ki"), shmField, nil},
		{"shm size negative", shm("-1"), shmField, nil},
		{"shm size negative with unit", shm("-64Mi"), shmField, nil},

		// cgroup parent (cgroupfs, the default manager)
		{"cgroup parent slice", func(c *pod.Config) { planLinux(c).CgroupParent = "kubepods.slice" }, "linux.cgroup_parent", leafAs[*cgroups.ParentError]()},
		{"cgroup parent relative", func(c *pod.Config) { planLinux(c).CgroupParent = "relative" }, "linux.cgroup_parent", leafIs(cgroups.ErrInvalid)},
		{"cgroup parent dotdot", func(c *pod.Config) { planLinux(c).CgroupParent = "/kubepods/../../etc" }, "linux.cgroup_parent", nil},
		{"cgroup parent newline", func(c *pod.Config) { planLinux(c).CgroupParent = "/kubepods\n" }, "linux.cgroup_parent", nil},

		// sysctls
		{"sysctl not namespaced", sysctls("kernel.panic", "1"), `linux.sysctls["kernel.panic"]`, leafAs[*spec.SysctlError]()},
		{"sysctl not namespaced, slashes", sysctls("net.core.somaxconn", "1", "vm/overcommit_memory", "1"), `linux.sysctls["vm/overcommit_memory"]`, nil},
		{"sysctl net with host network", both(hostNet, sysctls("net.ipv4.ip_forward", "1")), `linux.sysctls["net.ipv4.ip_forward"]`, leafIs(spec.ErrInvalid)},
		{"sysctl net slashes with host network", both(hostNet, sysctls("net/ipv4/ip_forward", "1")), `linux.sysctls["net/ipv4/ip_forward"]`, nil},
		{"sysctl shm with host IPC", both(hostIPC, sysctls("kernel.shmmax", "1")), `linux.sysctls["kernel.shmmax"]`, nil},
		{"sysctl mqueue with host IPC", both(hostIPC, sysctls("fs.mqueue.msg_max", "1")), `linux.sysctls["fs.mqueue.msg_max"]`, nil},
		{"sysctl value newline", sysctls("net.core.somaxconn", "1\nkernel.panic=1"), `linux.sysctls["net.core.somaxconn"]`, nil},
		{"sysctl name with space", sysctls("net.core. somaxconn", "1"), `linux.sysctls["net.core. somaxconn"]`, nil},
		{"sysctl set twice", sysctls("net.ipv4.ip_forward", "1", "net/ipv4/ip_forward", "0"), `linux.sysctls["net/ipv4/ip_forward"]`, nil},

		// user and groups
		{"run_as_user -1", func(c *pod.Config) { sec(c).RunAsUser = &pod.Int64Value{Value: -1} }, sc + "run_as_user.value", nil},
		{"run_as_user 2^32", func(c *pod.Config) { sec(c).RunAsUser = &pod.Int64Value{Value: 1 << 32} }, sc + "run_as_user.value", nil},
		{"run_as_user 2^32-1", func(c *pod.Config) { sec(c).RunAsUser = &pod.Int64Value{Value: 1<<32 - 1} }, sc + "run_as_user.value", nil},
		{"run_as_group -1", func(c *pod.Config) { sec(c).RunAsGroup = &pod.Int64Value{Value: -1} }, sc + "run_as_group.value", nil},
		{"supplemental_groups[1]", func(c *pod.Config) { sec(c).SupplementalGroups = []int64{1000, -5, 2000} }, sc + "supplemental_groups[1]", nil},

		// seccomp
		{"seccomp localhost relative", seccomp(pod.ProfileLocalhost, "profiles/audit.json"), sc + "seccomp.localhost_ref", leafAs[*spec.SeccompError]()},
		{"seccomp localhost empty", seccomp(pod.ProfileLocalhost, ""), sc + "seccomp.localhost_ref", nil},
		{"seccomp localhost missing", seccomp(pod.ProfileLocalhost, missing), sc + "seccomp.localhost_ref", leafIs(fs.ErrNotExist)},
		{"seccomp localhost bad JSON", seccomp(pod.ProfileLocalhost, badJSON), sc + "seccomp.localhost_ref", leafIs(spec.ErrInvalid)},
		{"seccomp localhost docker format", seccomp(pod.ProfileLocalhost, dockerFormat), sc + "seccomp.localhost_ref", nil},
		{"seccomp localhost bad action", seccomp(pod.ProfileLocalhost, badAction), sc + "seccomp.localhost_ref", mentions("SCMP_ACT_MAYBE")},
		{"seccomp localhost a directory", seccomp(pod.ProfileLocalhost, dir), sc + "seccomp.localhost_ref", nil},
		{"seccomp profile type 7", seccomp(7, ""), sc + "seccomp.profile_type", nil},
		{"seccomp_profile_path unknown", seccompPath("default"), sc + "seccomp_profile_path", mentions(`"default"`)},
		{"seccomp_profile_path localhost relative", seccompPath("localhost/relative.json"), sc + "seccomp_profile_path", nil},
		{"seccomp_profile_path localhost missing", seccompPath("localhost/" + missing), sc + "seccomp_profile_path", leafIs(fs.ErrNotExist)},

		// apparmor, selinux
		{"apparmor localhost", func(c *pod.Config) {
			sec(c).Apparmor = &pod.SecurityProfile{ProfileType: pod.ProfileLocalhost, LocalhostRef: "k8s-nginx"}
		}, sc + "apparmor", nil},
		{"selinux user whitespace", func(c *pod.Config) {
			sec(c).SelinuxOptions = &pod.SELinuxOptions{User: "system u", Type: "container_t"}
		}, sc + "selinux_options.user", nil},
		{"selinux level newline", func(c *pod.Config) { sec(c).SelinuxOptions = &pod.SELinuxOptions{Level: "s0\n"} }, sc + "selinux_options.level", nil},
		{"selinux type control char", func(c *pod.Config) { sec(c).SelinuxOptions = &pod.SELinuxOptions{Type: "a\x7f"} }, sc + "selinux_options.type", nil},

		// overhead and resources
		{"overhead cpu shares negative", func(c *pod.Config) { planLinux(c).Overhead = &pod.Resources{CPUShares: -1} }, "linux.overhead", nil},
		{"overhead memory negative", func(c *pod.Config) { planLinux(c).Overhead = &pod.Resources{MemoryLimitInBytes: -1} }, "linux.overhead", nil},
		{"resources cpu quota -2", func(c *pod.Config) { planLinux(c).Resources = &pod.Resources{CPUQuota: -2} }, "linux.resources", nil},
		{"resources cpu period negative", func(c *pod.Config) { planLinux(c).Resources = &pod.Resources{CPUPeriod: -1} }, "linux.resources", nil},
		{"resources oom score 1001", func(c *pod.Config) { planLinux(c).Resources = &pod.Resources{OomScoreAdj: 1001} }, "linux.resources", nil},
		{"resources oom score -1001", func(c *pod.Config) { planLinux(c).Resources = &pod.Resources{OomScoreAdj: -1001} }, "linux.resources", nil},
	}
}

func TestPlanRejectsEachProblem(t *testing.T) {
	b, h := planBuilder(t, sandbox.Options{})
	for _, tc := range planCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			cfg := planPod()
			tc.edit(cfg)
			p, err := b.Plan(cfg)
			assert.Nil(t, p)
			ce := requireConfigError(t, err)
			require.Len(t, ce.Problems, 1, "problems: %v", problemFields(ce))
			prob := ce.Problems[0]
			assert.Equal(t, tc.field, prob.Field)
			assert.Contains(t, err.Error(), prob.Field)
			if tc.check != nil {
				tc.check(t, err, prob)
			}
		})
	}
	assert.Empty(t, h.Ops())
}

// Each of these is valid, next to a rule above it must not trip.
func TestPlanAcceptsEdgeCases(t *testing.T) {
	dir := realTempDir(t)
	profile := filepath.Join(dir, "audit.json")
	require.NoError(t, os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_LOG"}`), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "logs"), 0o755))

	b, _ := planBuilder(t, sandbox.Options{})
	for name, edit := range map[string]func(c *pod.Config){
		"longest name":           func(c *pod.Config) { c.Metadata.Name = strings.Repeat("a", 253) },
		"longest namespace":      func(c *pod.Config) { c.Metadata.Namespace = strings.Repeat("n", 63) },
		"longest uid":            func(c *pod.Config) { c.Metadata.UID = strings.Repeat("u", 128) },
		"dotted name":            func(c *pod.Config) { c.Metadata.Name = "web.v1-2" },
		"largest attempt":        func(c *pod.Config) { c.Metadata.Attempt = 1<<32 - 1 },
		"log dir exists":         func(c *pod.Config) { c.LogDirectory = filepath.Join(dir, "logs") },
		"log dir does not exist": func(c *pod.Config) { c.LogDirectory = filepath.Join(dir, "logs", "a", "b") },
		"log dir root":           func(c *pod.Config) { c.LogDirectory = "/" },
		"128 port mappings": func(c *pod.Config) {
			for i := range 128 {
				c.PortMappings = append(c.PortMappings, pod.PortMapping{ContainerPort: 80, HostPort: int32(20000 + i)})
			}
		},
		"empty dns config": func(c *pod.Config) { c.DNSConfig = &pod.DNSConfig{} },
		"3 servers, 32 searches": func(c *pod.Config) {
			c.DNSConfig = &pod.DNSConfig{Servers: []string{"1.1.1.1", "2001:db8::1", "fe80::1%eth0"}, Searches: slices.Repeat([]string{"a.example"}, 32)}
		},
		"dns options only": func(c *pod.Config) { c.DNSConfig = &pod.DNSConfig{Options: []string{"ndots:5", "edns0"}} },
		"port 65535, host port 0": func(c *pod.Config) {
			c.PortMappings = []pod.PortMapping{{ContainerPort: 65535}, {ContainerPort: 1}}
		},
		"same host port, protocol": func(c *pod.Config) {
			c.PortMappings = []pod.PortMapping{{ContainerPort: 53, HostPort: 53}, {Protocol: pod.ProtocolUDP, ContainerPort: 53, HostPort: 53}}
		},
		"same host port, host ip": func(c *pod.Config) {
			c.PortMappings = []pod.PortMapping{{ContainerPort: 80, HostPort: 80, HostIP: "127.0.0.1"}, {ContainerPort: 80, HostPort: 80, HostIP: "127.0.0.2"}}
		},
		"qualified label key": func(c *pod.Config) { c.Labels = map[string]string{"app.kubernetes.io/name": "web", "a_b-c": ""} },
		"longest label key":   func(c *pod.Config) { c.Labels = map[string]string{strings.Repeat("k", 317): "v"} },
		"longest value":       func(c *pod.Config) { c.Annotations = map[string]string{"big": strings.Repeat("v", 64<<10)} },
		"value with newline":  func(c *pod.Config) { c.Annotations = map[string]string{"k": "a\nb"} },
		"kubernetes annotations": func(c *pod.Config) {
			c.Annotations = map[string]string{"io.kubernetes.cri-o.ShmSize": "1Gi", "podsmith.io/x": "y"}
		},
		"shm size 0":          func(c *pod.Config) { c.Annotations = map[string]string{pod.ShmSizeAnnotation: "0"} },
		"shm size at the cap": func(c *pod.Config) { c.Annotations = map[string]string{pod.ShmSizeAnnotation: "8Gi"} },
		"shm size 1.5Gi, as CRI-O takes it": func(c *pod.Config) {
			c.Annotations = map[string]string{pod.ShmSizeAnnotation: "1.5Gi"}
		},
		"bad shm size, host IPC": func(c *pod.Config) {
			planNS(c).Ipc = pod.NamespaceNode
			c.Annotations = map[string]string{pod.ShmSizeAnnotation: "lots"}
		},
		"pid CONTAINER":           func(c *pod.Config) { planNS(c).Pid = pod.NamespaceContainer },
		"all host namespaces":     func(c *pod.Config) { *planNS(c) = pod.NamespaceOptions{Network: 2, Pid: 2, Ipc: 2} },
		"hostname at most 63":     func(c *pod.Config) { c.Hostname = strings.Repeat("h", 63) },
		"host network, node name": func(c *pod.Config) { planNS(c).Network = pod.NamespaceNode; c.Hostname = "NODE-1" },
		"cgroup parent nested":    func(c *pod.Config) { planLinux(c).CgroupParent = "/kubepods/burstable/pod" + planUID },
		"namespaced sysctls": func(c *pod.Config) {
			planLinux(c).Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 2147483647", "kernel/msgmax": "65536", "kernel.sem": "250 32000 32 128", "fs.mqueue.queues_max": "256"}
		},
		"ipc sysctls, host net": func(c *pod.Config) {
			planNS(c).Network = pod.NamespaceNode
			planLinux(c).Sysctls = map[string]string{"kernel.shmmni": "4096"}
		},
		"net sysctls, host ipc": func(c *pod.Config) {
			planNS(c).Ipc = pod.NamespaceNode
			planLinux(c).Sysctls = map[string]string{"net.core.somaxconn": "1024"}
		},
		"largest user id": func(c *pod.Config) { planSC(c).RunAsUser = &pod.Int64Value{Value: 1<<32 - 2} },
		"root": func(c *pod.Config) {
			planSC(c).RunAsUser = &pod.Int64Value{}
			planSC(c).RunAsGroup = &pod.Int64Value{}
		},
		"seccomp localhost": func(c *pod.Config) {
			planSC(c).Seccomp = &pod.SecurityProfile{ProfileType: pod.ProfileLocalhost, LocalhostRef: profile}
		},
		"seccomp path localhost": func(c *pod.Config) { planSC(c).SeccompProfilePath = "localhost/" + profile },
		"seccomp path docker":    func(c *pod.Config) { planSC(c).SeccompProfilePath = "docker/default" },
		"seccomp wins over path": func(c *pod.Config) {
			planSC(c).SeccompProfilePath = "bogus"
			planSC(c).Seccomp = &pod.SecurityProfile{}
		},
		"privileged ignores seccomp": func(c *pod.Config) {
			planSC(c).Privileged = true
			planSC(c).Seccomp = &pod.SecurityProfile{ProfileType: pod.ProfileLocalhost, LocalhostRef: "relative"}
		},
		"apparmor unconfined": func(c *pod.Config) {
			planSC(c).Apparmor = &pod.SecurityProfile{ProfileType: pod.ProfileUnconfined}
		},
		"selinux options": func(c *pod.Config) {
			planSC(c).SelinuxOptions = &pod.SELinuxOptions{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c1,c2"}
		},
		"cpu quota -1":      func(c *pod.Config) { planLinux(c).Resources = &pod.Resources{CPUQuota: -1, OomScoreAdj: -1000} },
		"target_id ignored": func(c *pod.Config) { planNS(c).TargetID = "whatever" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := planPod()
			edit(cfg)
			p, err := b.Plan(cfg)
			require.NoError(t, err)
			require.NotNil(t, p)
		})
	}
}

func TestPlanReportsAllProblemsTogether(t *testing.T) {
	b, h := planBuilder(t, sandbox.Options{})
	cfg := &pod.Config{
		Metadata:     pod.Metadata{Name: "../x", Namespace: "", UID: planUID},
		Hostname:     "Web_1",
		LogDirectory: "logs",
		DNSConfig:    &pod.DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6", "8.8.8.8", "9.9.9.9", "1.0.0.1"}},
		PortMappings: []pod.PortMapping{{ContainerPort: 0}},
		Annotations:  map[string]string{"io.podsmith.sandbox-id": "x", pod.ShmSizeAnnotation: "lots"},
		Linux: &pod.LinuxConfig{
			CgroupParent: "kubepods.slice",
			Sysctls:      map[string]string{"kernel.panic": "1", "net.core.somaxconn": "1"},
			SecurityContext: &pod.SecurityContext{
				NamespaceOptions: &pod.NamespaceOptions{Pid: pod.NamespaceTarget},
				RunAsUser:        &pod.Int64Value{Value: -1},
				Seccomp:          &pod.SecurityProfile{ProfileType: pod.ProfileLocalhost, LocalhostRef: "relative"},
			},
			Resources: &pod.Resources{CPUShares: -1},
		},
	}
	p, err := b.Plan(cfg)
	assert.Nil(t, p)
	ce := requireConfigError(t, err)
	assert.Equal(t, []string{
		`annotations["io.kubernetes.cri-o.ShmSize"]`,
		`annotations["io.podsmith.sandbox-id"]`,
		"dns_config.servers",
		"dns_config.servers[0]",
		"hostname",
		"linux.cgroup_parent",
		"linux.resources",
		"linux.security_context.namespace_options.pid",
		"linux.security_context.run_as_user.value",
		"linux.security_context.seccomp.localhost_ref",
		`linux.sysctls["kernel.panic"]`,
		"log_directory",
		"metadata.name",
		"metadata.namespace",
		"port_mappings[0].container_port",
	}, problemFields(ce))

	// The message names every problem.
	for _, p := range ce.Problems {
		assert.Contains(t, err.Error(), p.Error())
	}

	// errors.As and errors.Is find the leaf packages' typed errors through
	// the ConfigError.
	var dv *dns.ValidationError
	require.ErrorAs(t, err, &dv)
	for _, p := range ce.Problems {
		if p.Field == "dns_config.servers[0]" {
			require.ErrorAs(t, p, &dv)
			assert.Equal(t, "servers", dv.Field)
			assert.Equal(t, 0, dv.Index)
		}
	}
	var se *spec.SysctlError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "kernel.panic", se.Name)
	var pe *cgroups.ParentError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "kubepods.slice", pe.Parent)
	var sce *spec.SeccompError
	require.ErrorAs(t, err, &sce)
	assert.ErrorIs(t, err, dns.ErrInvalid)
	assert.ErrorIs(t, err, spec.ErrInvalid)
	assert.ErrorIs(t, err, cgroups.ErrInvalid)
	var prob *sandbox.Problem
	require.ErrorAs(t, err, &prob)

	assert.Empty(t, h.Ops())
}

func TestPlanNilConfig(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	p, err := b.Plan(nil)
	assert.Nil(t, p)
	requireConfigError(t, err)
}

func TestPlanValidConfig(t *testing.T) {
	b, h := planBuilder(t, sandbox.Options{})
	opts := b.Options()
	cfg := planPod()
	cfg.Metadata.Attempt = 3
	cfg.Labels = map[string]string{"app": "web"}
	cfg.Annotations = map[string]string{"kubernetes.io/config.source": "api"}
	cfg.LogDirectory = "/var/log/pods/default_web_" + planUID
	cfg.PortMappings = []pod.PortMapping{{ContainerPort: 80, HostPort: 8080}}
	before, err := json.Marshal(cfg)
	require.NoError(t, err)

	p, err := b.Plan(cfg)
	require.NoError(t, err)

	assert.Regexp(t, `^[0-9a-f]{64}$`, p.ID)
	assert.Equal(t, "k8s_web_default_"+planUID+"_3", p.Name)
	assert.NotContains(t, p.Name, "/")
	assert.Same(t, cfg, p.Config)
	after, err := json.Marshal(cfg)
	require.NoError(t, err)
	assert.JSONEq(t, string(before), string(after), "Plan modified the config")
	assert.Equal(t, sandbox.StatePlanned, p.State)
	assert.Equal(t, "false", p.Spec.Annotations[spec.AnnotationPrivileged])

	// Paths: under the Builder's directories, named by the ID only.
	assert.True(t, under(p.BundleDir, opts.RunDir), p.BundleDir)
	assert.Equal(t, p.ID, filepath.Base(p.BundleDir))
	assert.Equal(t, opts.NetnsDir, filepath.Dir(p.NetnsPath))
	assert.Contains(t, filepath.Base(p.NetnsPath), p.ID)
	for _, f := range []string{p.Files.ResolvConf, p.Files.Hostname, p.Files.Hosts, p.Files.Shm, p.Files.Rootfs} {
		assert.True(t, under(f, p.BundleDir), f)
		assert.NotEqual(t, p.BundleDir, f)
	}

	assert.Equal(t, p.ID[:12], p.Hostname)
	assert.Equal(t, "/podsmith", p.CgroupParent)
	assert.Equal(t, "/podsmith/podsmith-"+p.ID, p.CgroupsPath)
	assert.Equal(t, int64(64<<20), p.ShmSize)
	assert.False(t, p.Created.IsZero())

	s := p.Spec
	require.NotNil(t, s)
	assert.Equal(t, p.Hostname, s.Hostname)
	assert.Equal(t, p.CgroupsPath, s.Linux.CgroupsPath)
	assert.Contains(t, s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: p.NetnsPath})
	for _, typ := range []specs.LinuxNamespaceType{specs.UTSNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.MountNamespace} {
		assert.Contains(t, s.Linux.Namespaces, specs.LinuxNamespace{Type: typ})
	}
	assert.Equal(t, uint32(spec.PauseUID), s.Process.User.UID)
	assert.Equal(t, uint32(spec.PauseGID), s.Process.User.GID)
	assert.Empty(t, s.Process.User.AdditionalGids)
	assert.Equal(t, opts.Seccomp.RuntimeDefault, s.Linux.Seccomp)
	assert.Empty(t, s.Linux.Sysctl)
	mountSources := map[string]string{}
	for _, m := range s.Mounts {
		mountSources[m.Destination] = m.Source
	}
	assert.Equal(t, p.Files.Shm, mountSources["/dev/shm"])
	assert.Equal(t, p.Files.ResolvConf, mountSources["/etc/resolv.conf"])
	assert.Equal(t, p.Files.Hostname, mountSources["/etc/hostname"])
	assert.Equal(t, p.Files.Hosts, mountSources["/etc/hosts"])

	a := s.Annotations
	for k, want := range map[string]string{
		spec.AnnotationSandboxID:      p.ID,
		spec.AnnotationSandboxName:    p.Name,
		spec.AnnotationNamespace:      "default",
		spec.AnnotationKubeName:       "web",
		spec.AnnotationUID:            planUID,
		spec.AnnotationLogDirectory:   cfg.LogDirectory,
		spec.AnnotationShmPath:        p.Files.Shm,
		spec.AnnotationResolvPath:     p.Files.ResolvConf,
		spec.AnnotationHostnamePath:   p.Files.Hostname,
		spec.AnnotationHostsPath:      p.Files.Hosts,
		spec.AnnotationHostname:       p.Hostname,
		spec.AnnotationCgroupParent:   "/podsmith",
		spec.AnnotationPrivileged:     "false",
		spec.AnnotationHostNetwork:    "false",
		spec.AnnotationHostPID:        "false",
		spec.AnnotationHostIPC:        "false",
		spec.AnnotationNetnsPath:      p.NetnsPath,
		spec.CRIContainerType:         spec.ContainerTypeSandbox,
		spec.CRISandboxID:             p.ID,
		spec.CRISandboxName:           "web",
		spec.CRISandboxNamespace:      "default",
		spec.CRISandboxUID:            planUID,
		spec.CRISandboxLogDirectory:   cfg.LogDirectory,
		"kubernetes.io/config.source": "api", // the pod's own, passed through
		spec.AnnotationLabels:         `{"app":"web"}`,
		spec.AnnotationAnnotations:    `{"kubernetes.io/config.source":"api"}`,
		spec.AnnotationMetadata:       `{"name":"web","uid":"` + planUID + `","namespace":"default","attempt":3}`,
		spec.AnnotationPortMappings:   `[{"container_port":80,"host_port":8080}]`,
		spec.AnnotationCreated:        p.Created.Format(time.RFC3339Nano),
	} {
		if strings.HasPrefix(want, "{") || strings.HasPrefix(want, "[") {
			assert.JSONEq(t, want, a[k], k)
		} else {
			assert.Equal(t, want, a[k], k)
		}
	}
	assert.NotContains(t, a, spec.AnnotationOverhead)
	assert.NotContains(t, a, spec.AnnotationResources)

	// Each Plan draws a new ID.
	p2, err := b.Plan(cfg)
	require.NoError(t, err)
	assert.NotEqual(t, p.ID, p2.ID)
	assert.NotEqual(t, p.BundleDir, p2.BundleDir)
	assert.NotEqual(t, p.NetnsPath, p2.NetnsPath)
	assert.Equal(t, p.Name, p2.Name)

	assert.Empty(t, h.Ops())
}

func TestPlanIDsAreUnique(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	seen := map[string]bool{}
	for range 200 {
		p, err := b.Plan(planPod())
		require.NoError(t, err)
		require.False(t, seen[p.ID], "ID %s drawn twice", p.ID)
		seen[p.ID] = true
	}
}

func TestPlanHostNamespaces(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	cfg := planPod()
	*planNS(cfg) = pod.NamespaceOptions{Network: pod.NamespaceNode, Pid: pod.NamespaceNode, Ipc: pod.NamespaceNode}
	p, err := b.Plan(cfg)
	require.NoError(t, err)

	for _, k := range []string{spec.AnnotationHostNetwork, spec.AnnotationHostPID, spec.AnnotationHostIPC} {
		assert.Equal(t, "true", p.Spec.Annotations[k], k)
	}
	assert.Empty(t, p.NetnsPath)
	assert.Equal(t, planNode, p.Hostname)
	assert.Equal(t, "/dev/shm", p.Files.Shm)
	assert.Zero(t, p.ShmSize)

	s := p.Spec
	assert.Empty(t, s.Hostname, "a host-network pod's spec sets no hostname")
	for _, ns := range s.Linux.Namespaces {
		assert.NotContains(t, []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.UTSNamespace, specs.PIDNamespace, specs.IPCNamespace}, ns.Type)
	}
	assert.Contains(t, s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.MountNamespace})
	assert.NotContains(t, s.Annotations, spec.AnnotationNetnsPath)
	assert.Equal(t, "true", s.Annotations[spec.AnnotationHostNetwork])
	assert.Equal(t, "true", s.Annotations[spec.AnnotationHostPID])
	assert.Equal(t, "true", s.Annotations[spec.AnnotationHostIPC])
	assert.Equal(t, planNode, s.Annotations[spec.AnnotationHostname])
	assert.Equal(t, "/dev/shm", s.Annotations[spec.AnnotationShmPath])

	// Host network alone keeps the other namespaces, and the sandbox's shm.
	cfg = planPod()
	planNS(cfg).Network = pod.NamespaceNode
	p, err = b.Plan(cfg)
	require.NoError(t, err)
	assert.Empty(t, p.NetnsPath)
	assert.Empty(t, p.Spec.Hostname)
	assert.True(t, under(p.Files.Shm, p.BundleDir))
	assert.Contains(t, p.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.IPCNamespace})
	assert.Contains(t, p.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	assert.NotContains(t, p.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace})
}

func TestPlanHostNetworkNodeHostnameFails(t *testing.T) {
	boom := errors.New("no hostname for you")
	b, _ := planBuilder(t, sandbox.Options{NodeHostname: func() (string, error) { return "", boom }})
	cfg := planPod()
	planNS(cfg).Network = pod.NamespaceNode
	_, err := b.Plan(cfg)
	ce := requireConfigError(t, err)
	assert.Equal(t, []string{"hostname"}, problemFields(ce))
	assert.ErrorIs(t, err, boom)

	// Pods with their own network do not ask the node.
	_, err = b.Plan(planPod())
	require.NoError(t, err)
}

func TestPlanHostResolvConf(t *testing.T) {
	dir := t.TempDir()
	stub := filepath.Join(dir, "stub-resolv.conf")
	require.NoError(t, os.WriteFile(stub, []byte("nameserver 127.0.0.53\noptions edns0\n"), 0o644))

	b, _ := planBuilder(t, sandbox.Options{HostResolvConf: stub})
	_, err := b.Plan(planPod())
	ce := requireConfigError(t, err)
	assert.Equal(t, []string{"dns_config"}, problemFields(ce))
	assert.ErrorIs(t, err, dns.ErrNoNameservers)

	// With its own DNS config, or the host's network, the pod does not
	// need the node's resolv.conf to be usable.
	cfg := planPod()
	cfg.DNSConfig = &pod.DNSConfig{Servers: []string{"10.96.0.10"}}
	_, err = b.Plan(cfg)
	require.NoError(t, err)
	cfg = planPod()
	planNS(cfg).Network = pod.NamespaceNode
	_, err = b.Plan(cfg)
	require.NoError(t, err)

	b, _ = planBuilder(t, sandbox.Options{HostResolvConf: filepath.Join(dir, "missing")})
	_, err = b.Plan(planPod())
	ce = requireConfigError(t, err)
	assert.Equal(t, []string{"dns_config"}, problemFields(ce))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestPlanShmSize(t *testing.T) {
	page := int64(os.Getpagesize())
	roundUp := func(n int64) int64 { return (n + page - 1) / page * page }
	b, _ := planBuilder(t, sandbox.Options{})
	for value, want := range map[string]int64{
		"128Mi":      128 << 20,
		"1Gi":        1 << 30,
		"100M":       roundUp(100e6),
		"1000000":    roundUp(1e6),
		"1":          page,
		"4Ki":        roundUp(4 << 10),
		"1G":         roundUp(1e9),
		"0":          64 << 20, // the default
		"8589934592": 8 << 30,  // the default cap, exactly
	} {
		cfg := planPod()
		cfg.Annotations = map[string]string{pod.ShmSizeAnnotation: value}
		p, err := b.Plan(cfg)
		if assert.NoError(t, err, value) {
			assert.Equal(t, want, p.ShmSize, value)
		}
	}

	// The node's default and cap.
	b, _ = planBuilder(t, sandbox.Options{ShmSize: 32 << 20, MaxShmSize: 256 << 20})
	p, err := b.Plan(planPod())
	require.NoError(t, err)
	assert.Equal(t, int64(32<<20), p.ShmSize)
	cfg := planPod()
	cfg.Annotations = map[string]string{pod.ShmSizeAnnotation: "257Mi"}
	_, err = b.Plan(cfg)
	ce := requireConfigError(t, err)
	assert.Equal(t, []string{fmt.Sprintf("annotations[%q]", pod.ShmSizeAnnotation)}, problemFields(ce))
}

func TestPlanSysctls(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{DefaultSysctls: map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "1024",
		"net/core/somaxconn":                  "128",
		"kernel.shm_rmid_forced":              "1",
	}})
	for _, tc := range []struct {
		name    string
		ns      pod.NamespaceOptions
		sysctls map[string]string
		want    map[string]string
	}{
		{"defaults", pod.NamespaceOptions{}, nil, map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "1024", "net.core.somaxconn": "128", "kernel.shm_rmid_forced": "1",
		}},
		{"the pod's override the node's", pod.NamespaceOptions{}, map[string]string{
			"net.core.somaxconn": "4096", "kernel/msgmax": "65536", "net/ipv4/conf/eth0.100/forwarding": "1",
		}, map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "1024", "net.core.somaxconn": "4096", "kernel.shm_rmid_forced": "1",
			"kernel.msgmax": "65536", "net.ipv4.conf.eth0/100.forwarding": "1",
		}},
		{"host network drops net.*", pod.NamespaceOptions{Network: pod.NamespaceNode}, map[string]string{
			"kernel.shmmax": "1000",
		}, map[string]string{"kernel.shm_rmid_forced": "1", "kernel.shmmax": "1000"}},
		{"host IPC drops IPC ones", pod.NamespaceOptions{Ipc: pod.NamespaceNode}, nil, map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "1024", "net.core.somaxconn": "128",
		}},
		{"host network and IPC", pod.NamespaceOptions{Network: pod.NamespaceNode, Ipc: pod.NamespaceNode}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := planPod()
			*planNS(cfg) = tc.ns
			planLinux(cfg).Sysctls = tc.sysctls
			p, err := b.Plan(cfg)
			require.NoError(t, err)
			if tc.want == nil {
				assert.Empty(t, p.Spec.Linux.Sysctl)
			} else {
				assert.Equal(t, tc.want, p.Spec.Linux.Sysctl)
			}
		})
	}
}

func TestPlanUser(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	for _, tc := range []struct {
		name string
		sc   pod.SecurityContext
		want specs.User
	}{
		{"default", pod.SecurityContext{}, specs.User{UID: 65535, GID: 65535}},
		{"run_as_user", pod.SecurityContext{RunAsUser: &pod.Int64Value{Value: 1000}}, specs.User{UID: 1000, GID: 65535}},
		{"root", pod.SecurityContext{RunAsUser: &pod.Int64Value{}, RunAsGroup: &pod.Int64Value{}}, specs.User{}},
		{"all", pod.SecurityContext{
			RunAsUser: &pod.Int64Value{Value: 1000}, RunAsGroup: &pod.Int64Value{Value: 3000}, SupplementalGroups: []int64{4000, 5000},
		}, specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{4000, 5000}}},
		{"largest", pod.SecurityContext{RunAsUser: &pod.Int64Value{Value: 1<<32 - 2}}, specs.User{UID: 1<<32 - 2, GID: 65535}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := planPod()
			*planSC(cfg) = tc.sc
			p, err := b.Plan(cfg)
			require.NoError(t, err)
			u := p.Spec.Process.User
			assert.Equal(t, tc.want.UID, u.UID)
			assert.Equal(t, tc.want.GID, u.GID)
			assert.ElementsMatch(t, tc.want.AdditionalGids, u.AdditionalGids)
		})
	}
}

func TestPlanSeccomp(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "audit.json")
	require.NoError(t, os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_LOG","architectures":["SCMP_ARCH_X86_64"]}`), 0o644))
	want := &specs.LinuxSeccomp{DefaultAction: specs.ActLog, Architectures: []specs.Arch{specs.ArchX86_64}}

	const (
		isDefault = "runtime default"
		isNone    = "none"
		isLocal   = "localhost"
	)
	prof := func(typ pod.ProfileType, ref string) *pod.SecurityProfile {
		return &pod.SecurityProfile{ProfileType: typ, LocalhostRef: ref}
	}
	for _, tc := range []struct {
		name  string
		unset pod.ProfileType
		sc    pod.SecurityContext
		want  string
	}{
		{"unset", pod.ProfileRuntimeDefault, pod.SecurityContext{}, isDefault},
		{"unset, node says unconfined", pod.ProfileUnconfined, pod.SecurityContext{}, isNone},
		{"RuntimeDefault", pod.ProfileUnconfined, pod.SecurityContext{Seccomp: prof(pod.ProfileRuntimeDefault, "")}, isDefault},
		{"Unconfined", pod.ProfileRuntimeDefault, pod.SecurityContext{Seccomp: prof(pod.ProfileUnconfined, "")}, isNone},
		{"Localhost", pod.ProfileRuntimeDefault, pod.SecurityContext{Seccomp: prof(pod.ProfileLocalhost, profile)}, isLocal},
		{"privileged", pod.ProfileRuntimeDefault, pod.SecurityContext{Privileged: true}, isNone},
		{"privileged RuntimeDefault", pod.ProfileRuntimeDefault, pod.SecurityContext{Privileged: true, Seccomp: prof(pod.ProfileRuntimeDefault, "")}, isNone},
		{"privileged Localhost", pod.ProfileRuntimeDefault, pod.SecurityContext{Privileged: true, Seccomp: prof(pod.ProfileLocalhost, profile)}, isNone},
		{"path runtime/default", pod.ProfileUnconfined, pod.SecurityContext{SeccompProfilePath: "runtime/default"}, isDefault},
		{"path docker/default", pod.ProfileUnconfined, pod.SecurityContext{SeccompProfilePath: "docker/default"}, isDefault},
		{"path unconfined", pod.ProfileRuntimeDefault, pod.SecurityContext{SeccompProfilePath: "unconfined"}, isNone},
		{"path localhost", pod.ProfileRuntimeDefault, pod.SecurityContext{SeccompProfilePath: "localhost/" + profile}, isLocal},
		{"seccomp wins over path", pod.ProfileRuntimeDefault, pod.SecurityContext{
			Seccomp: prof(pod.ProfileUnconfined, ""), SeccompProfilePath: "runtime/default",
		}, isNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := planBuilder(t, sandbox.Options{Seccomp: sandbox.SeccompOptions{Unset: tc.unset}})
			cfg := planPod()
			*planSC(cfg) = tc.sc
			p, err := b.Plan(cfg)
			require.NoError(t, err)
			got := p.Spec.Linux.Seccomp
			switch tc.want {
			case isDefault:
				assert.Equal(t, b.Options().Seccomp.RuntimeDefault, got)
				assert.NotSame(t, b.Options().Seccomp.RuntimeDefault, got, "every plan has a copy of its own")
			case isNone:
				assert.Nil(t, got)
			case isLocal:
				assert.Equal(t, want, got)
			}
		})
	}

	// The node chooses the profile behind RuntimeDefault.
	b, _ := planBuilder(t, sandbox.Options{Seccomp: sandbox.SeccompOptions{RuntimeDefault: spec.PauseProfile()}})
	p, err := b.Plan(planPod())
	require.NoError(t, err)
	assert.Equal(t, spec.PauseProfile(), p.Spec.Linux.Seccomp)

	// A caller who edits one plan's profile edits no other's.
	p.Spec.Linux.Seccomp.Syscalls[0].Names[0] = "edited"
	p.Spec.Linux.Seccomp.Syscalls = p.Spec.Linux.Seccomp.Syscalls[:1]
	p2, err := b.Plan(planPod())
	require.NoError(t, err)
	assert.Equal(t, spec.PauseProfile(), p2.Spec.Linux.Seccomp)
	assert.NotEqual(t, "edited", b.Options().Seccomp.RuntimeDefault.Syscalls[0].Names[0])
	def := spec.RuntimeDefaultProfile()
	def.Syscalls = nil
	assert.NotEmpty(t, spec.RuntimeDefaultProfile().Syscalls, "RuntimeDefaultProfile returns a copy")
}

func TestPlanPrivileged(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	cfg := planPod()
	planSC(cfg).Privileged = true
	p, err := b.Plan(cfg)
	require.NoError(t, err)
	assert.Equal(t, "true", p.Spec.Annotations[spec.AnnotationPrivileged])
	assert.Nil(t, p.Spec.Linux.Seccomp)
	assert.Empty(t, p.Spec.Linux.MaskedPaths)
	assert.Empty(t, p.Spec.Linux.ReadonlyPaths)
	assert.Empty(t, p.Spec.Process.SelinuxLabel)
	assert.Equal(t, "true", p.Spec.Annotations[spec.AnnotationPrivileged])
}

func TestPlanResourcesAreRecorded(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	cfg := planPod()
	planLinux(cfg).Overhead = &pod.Resources{CPUShares: 256}
	planLinux(cfg).Resources = &pod.Resources{MemoryLimitInBytes: 1 << 30, CpusetCpus: "0-1"}
	p, err := b.Plan(cfg)
	require.NoError(t, err)
	assert.JSONEq(t, `{"cpu_shares":256}`, p.Spec.Annotations[spec.AnnotationOverhead])
	assert.JSONEq(t, `{"memory_limit_in_bytes":1073741824,"cpuset_cpus":"0-1"}`, p.Spec.Annotations[spec.AnnotationResources])
}

func TestPlanSystemdCgroups(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{CgroupManager: cgroups.Systemd})
	p, err := b.Plan(planPod())
	require.NoError(t, err)
	assert.Equal(t, "podsmith.slice", p.CgroupParent)
	assert.Equal(t, "podsmith.slice:podsmith:"+p.ID, p.CgroupsPath)

	cfg := planPod()
	planLinux(cfg).CgroupParent = "kubepods-burstable-pod1.slice"
	p, err = b.Plan(cfg)
	require.NoError(t, err)
	assert.Equal(t, "kubepods-burstable-pod1.slice:podsmith:"+p.ID, p.CgroupsPath)
	assert.Equal(t, p.CgroupsPath, p.Spec.Linux.CgroupsPath)

	for _, parent := range []string{"/kubepods", "a--b.slice", "kubepods"} {
		cfg := planPod()
		planLinux(cfg).CgroupParent = parent
		_, err := b.Plan(cfg)
		ce := requireConfigError(t, err)
		assert.Equal(t, []string{"linux.cgroup_parent"}, problemFields(ce), parent)
		var pe *cgroups.ParentError
		assert.ErrorAs(t, err, &pe, parent)
	}
}

// dirListing lists everything under dirs: path, mode and size.
func dirListing(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%s %v %d %v", path, info.Mode(), info.Size(), info.ModTime().UnixNano()))
			return nil
		})
		require.NoError(t, err)
	}
	return out
}

func TestPlanHasNoSideEffects(t *testing.T) {
	b, h := planBuilder(t, sandbox.Options{})
	o := b.Options()
	dirs := []string{o.StateDir, o.RunDir, o.NetnsDir}
	before := dirListing(t, dirs...)

	logs := filepath.Join(realTempDir(t), "logs", "pod")
	profile := filepath.Join(t.TempDir(), "p.json")
	require.NoError(t, os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644))

	valid := planPod()
	valid.LogDirectory = logs
	valid.Annotations = map[string]string{pod.ShmSizeAnnotation: "1Gi"}
	valid.PortMappings = []pod.PortMapping{{ContainerPort: 80, HostPort: 80}}
	valid.DNSConfig = &pod.DNSConfig{Servers: []string{"10.96.0.10"}}
	planSC(valid).Seccomp = &pod.SecurityProfile{ProfileType: pod.ProfileLocalhost, LocalhostRef: profile}
	planLinux(valid).Sysctls = map[string]string{"net.core.somaxconn": "1024"}

	hostNet := planPod()
	*planNS(hostNet) = pod.NamespaceOptions{Network: 2, Pid: 2, Ipc: 2}

	configs := []*pod.Config{valid, hostNet, planPod()}
	for _, tc := range planCases(t) {
		c := planPod()
		tc.edit(c)
		configs = append(configs, c)
	}
	for _, c := range configs {
		_, _ = b.Plan(c)
	}
	p, err := b.Plan(valid)
	require.NoError(t, err)

	assert.Equal(t, before, dirListing(t, dirs...))
	assert.Empty(t, h.Ops())
	assert.NoDirExists(t, filepath.Dir(logs), "Plan made the log directory")
	for _, path := range []string{p.BundleDir, p.NetnsPath, p.Files.Shm, p.Files.ResolvConf} {
		assert.NoFileExists(t, path)
		assert.NoDirExists(t, path)
	}
}

// Whatever the pod's name, namespace and UID, no path of the Plan leaves
// the Builder's directories: bad ones are refused, with a typed error, and
// good ones never appear in a path.
func TestPlanPathSafety(t *testing.T) {
	b, h := planBuilder(t, sandbox.Options{})
	o := b.Options()
	before := dirListing(t, o.StateDir, o.RunDir, o.NetnsDir)

	bad := []string{
		"..", ".", "../../../../etc", "a/../../b", "a/b", "/abs", "a\x00b", "\x00",
		strings.Repeat("a", 10<<10), strings.Repeat("../", 3000), "a\nb", "a b", "a_b", "~root", "$(id)", "a\\b",
	}
	for _, field := range []string{"name", "namespace", "uid"} {
		for _, v := range bad {
			cfg := planPod()
			switch field {
			case "name":
				cfg.Metadata.Name = v
			case "namespace":
				cfg.Metadata.Namespace = v
			case "uid":
				cfg.Metadata.UID = v
			}
			p, err := b.Plan(cfg)
			assert.Nil(t, p, "%s %q", field, v)
			var ce *sandbox.ConfigError
			if assert.ErrorAs(t, err, &ce, "%s %q", field, v) {
				assert.Equal(t, []string{"metadata." + field}, problemFields(ce), "%s %q", field, v)
			}
		}
	}

	// Odd but valid names stay out of the paths.
	for _, v := range []string{"a..b", "a.", "a-", "x.." + strings.Repeat("y", 60)} {
		cfg := planPod()
		cfg.Metadata = pod.Metadata{Name: v, Namespace: v, UID: v}
		p, err := b.Plan(cfg)
		require.NoError(t, err, v)
		// What podsmith itself puts in a path (the Builder's dirs, the
		// netns pin's name with its random tag, the sandbox ID) may spell
		// "a-" by chance; only the rest must not hold the pod's names.
		ours := strings.NewReplacer(o.RunDir, "<run>", o.NetnsDir, "<netns>", filepath.Base(p.NetnsPath), "<pin>", p.ID, "<id>")
		for _, path := range []string{p.BundleDir, p.NetnsPath, p.Files.ResolvConf, p.Files.Hostname, p.Files.Hosts, p.Files.Shm, p.Files.Rootfs} {
			assert.True(t, under(path, o.RunDir) || under(path, o.NetnsDir), path)
			assert.NotContains(t, ours.Replace(path), v, path)
		}
		assert.Equal(t, 4, strings.Count(p.Name, "_"), p.Name)
	}

	assert.Equal(t, before, dirListing(t, o.StateDir, o.RunDir, o.NetnsDir))
	assert.Empty(t, h.Ops())
}

// A cgroup prefix the cgroups package refuses must not give pods an empty
// cgroupsPath (a runtime then puts the pause in its own cgroup, outside
// every parent): NewBuilder should refuse it (or Plan report it).
func TestPlanInvalidCgroupPrefix(t *testing.T) {
	for name, o := range map[string]sandbox.Options{
		"slash":             {CgroupPrefix: "a/b"},
		"dotdot":            {CgroupPrefix: ".."},
		"space":             {CgroupPrefix: "pod smith"},
		"too long, systemd": {CgroupManager: cgroups.Systemd, CgroupPrefix: strings.Repeat("p", 250)},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
			require.NoError(t, err)
			o.StateDir, o.RunDir, o.NetnsDir = filepath.Join(dir, "state"), filepath.Join(dir, "run"), filepath.Join(dir, "netns")
			require.NoError(t, h.Apply(&o))
			b, err := sandbox.NewBuilder(o)
			if err != nil {
				ce := requireConfigError(t, err)
				assert.Equal(t, []string{"Options.CgroupPrefix"}, problemFields(ce))
				return
			}
			p, err := b.Plan(planPod())
			if err != nil {
				requireConfigError(t, err)
				return
			}
			assert.NotEmpty(t, p.CgroupsPath, "NewBuilder took CgroupPrefix %q and Plan gives an empty cgroupsPath", o.CgroupPrefix)
			assert.NotEmpty(t, p.Spec.Linux.CgroupsPath)
		})
	}
}

// Options.Seccomp.Unset is the node's choice; a value that is not a profile
// type must be refused by NewBuilder, not reported as a problem of every
// pod that says nothing about seccomp.
func TestPlanSeccompUnsetOutOfRange(t *testing.T) {
	for _, unset := range []pod.ProfileType{3, 7, -1} {
		dir := t.TempDir()
		h, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
		require.NoError(t, err)
		o := sandbox.Options{StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run"), NetnsDir: filepath.Join(dir, "netns")}
		o.Seccomp.Unset = unset
		require.NoError(t, h.Apply(&o))
		_, err = sandbox.NewBuilder(o)
		if assert.Error(t, err, "NewBuilder accepted Seccomp.Unset %d", unset) {
			ce := requireConfigError(t, err)
			assert.Equal(t, []string{"Options.Seccomp.Unset"}, problemFields(ce))
		}
	}
}

// The Config documents that only RuntimeDefault and Unconfined AppArmor
// profiles are valid; a profile type that is none of CRI's must not pass
// silently (a seccomp one does not).
func TestPlanAppArmorProfileTypeOutOfRange(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	for _, typ := range []pod.ProfileType{3, 7, -1} {
		cfg := planPod()
		planSC(cfg).Apparmor = &pod.SecurityProfile{ProfileType: typ}
		p, err := b.Plan(cfg)
		if !assert.Error(t, err, "Plan accepted AppArmor profile type %d", typ) {
			continue
		}
		assert.Nil(t, p)
		ce := requireConfigError(t, err)
		require.Len(t, ce.Problems, 1)
		assert.Contains(t, []string{"linux.security_context.apparmor", "linux.security_context.apparmor.profile_type"}, ce.Problems[0].Field)
	}
}

// Pods without a DNS config get the node's resolv.conf as it is now, not
// as it was at an earlier Plan.
func TestPlanSeesHostResolvConfChanges(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	require.NoError(t, os.WriteFile(rc, []byte("nameserver 192.0.2.1\n"), 0o644))
	b, _ := planBuilder(t, sandbox.Options{HostResolvConf: rc})
	cfg := planPod()
	for i := range 20 {
		require.NoError(t, os.WriteFile(rc, []byte("nameserver 192.0.2.1\n"), 0o644))
		_, err := b.Plan(cfg)
		require.NoError(t, err, "round %d", i)
		// Same size, same inode: only the content (and times) change.
		require.NoError(t, os.WriteFile(rc, []byte("nameserver 127.0.0.1\n"), 0o644))
		_, err = b.Plan(cfg)
		require.ErrorIs(t, err, dns.ErrNoNameservers, "round %d: Plan used a stale copy of the node's resolv.conf", i)
	}
	require.NoError(t, os.Remove(rc))
	_, err := b.Plan(cfg)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.NoError(t, os.WriteFile(rc, []byte("nameserver 192.0.2.1\n"), 0o644))
	_, err = b.Plan(cfg)
	require.NoError(t, err)
}

// A Builder is safe for concurrent use: Plans race on nothing (run with
// -race) and each draws its own ID.
func TestPlanConcurrent(t *testing.T) {
	b, h := planBuilder(t, sandbox.Options{DefaultSysctls: map[string]string{"net.core.somaxconn": "1024"}})
	const workers, each = 8, 25
	ids := make(chan string, workers*each)
	errs := make(chan error, workers*each)
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				cfg := planPod()
				cfg.Metadata.Attempt = uint32(w*each + i)
				if i%3 == 0 {
					planNS(cfg).Network = pod.NamespaceNode
				}
				if i%5 == 0 {
					cfg.Hostname = "Bad_Name"
				}
				p, err := b.Plan(cfg)
				if i%5 == 0 {
					if err == nil {
						errs <- fmt.Errorf("Plan accepted a bad hostname")
					}
					continue
				}
				if err != nil {
					errs <- err
					continue
				}
				ids <- p.ID
			}
		}()
	}
	for range workers {
		<-done
	}
	close(ids)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for id := range ids {
		assert.False(t, seen[id], "ID %s drawn twice", id)
		seen[id] = true
	}
	assert.Len(t, seen, workers*each*4/5)
	assert.Empty(t, h.Ops())
}

// "" and "0.0.0.0" both mean every IPv4 address of the node: two mappings
// of one host port on them collide like two on the same address.
func TestPlanDuplicateHostPortOnTheWildcard(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	cfg := planPod()
	cfg.PortMappings = []pod.PortMapping{
		{ContainerPort: 80, HostPort: 8080},
		{ContainerPort: 81, HostPort: 8080, HostIP: "0.0.0.0"},
	}
	_, err := b.Plan(cfg)
	if assert.Error(t, err, "Plan accepted host port 8080 twice, on \"\" and on 0.0.0.0") {
		ce := requireConfigError(t, err)
		assert.Equal(t, []string{"port_mappings[1].host_port"}, problemFields(ce))
	}
}

// The crictl-format samples decode, and Plan finds what in them does not
// fit this node.
func TestPlanDecodedSamples(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	for file, want := range map[string][]string{
		"pod-config.json": {
			"hostname", // "nginx", with the host network of node-1
			"linux.security_context.seccomp.localhost_ref",         // no such profile here
			`linux.sysctls["net.ipv4.ip_unprivileged_port_start"]`, // net.* with the host network
		},
		"pod-config-names.yaml": {"linux.security_context.seccomp.localhost_ref"},
	} {
		t.Run(file, func(t *testing.T) {
			cfg, err := pod.Load(filepath.Join("..", "pod", "testdata", file))
			require.NoError(t, err)
			_, err = b.Plan(cfg)
			ce := requireConfigError(t, err)
			assert.Equal(t, want, problemFields(ce))

			// Fixed, it plans.
			cfg.Hostname = ""
			cfg.Linux.SecurityContext.Seccomp = nil
			delete(cfg.Linux.Sysctls, "net.ipv4.ip_unprivileged_port_start")
			p, err := b.Plan(cfg)
			require.NoError(t, err)
			assert.Equal(t, planNode, p.Hostname)
			assert.Empty(t, p.NetnsPath)
		})
	}
}

// A config with thousands of problems gets a message of a bounded size,
// naming the first MaxProblemsInError of them and how many more there
// are; Problems holds them all.
func TestConfigErrorMessageIsBounded(t *testing.T) {
	b, _ := planBuilder(t, sandbox.Options{})
	cfg := planPod()
	cfg.Linux = &pod.LinuxConfig{Sysctls: map[string]string{}}
	for i := range 5000 {
		cfg.Linux.Sysctls[fmt.Sprintf("vm.not_namespaced_%d", i)] = "1"
	}
	_, err := b.Plan(cfg)
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	require.Len(t, ce.Problems, 5000)
	msg := err.Error()
	assert.Less(t, len(msg), 16<<10)
	assert.Equal(t, sandbox.MaxProblemsInError, strings.Count(msg, "vm.not_namespaced_"))
	assert.Contains(t, msg, "(5000 problems)")
	assert.Contains(t, msg, fmt.Sprintf("and %d more", 5000-sandbox.MaxProblemsInError))
}
