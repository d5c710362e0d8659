package spec

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func nsTypes(s *Spec) []specs.LinuxNamespaceType {
	var out []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		out = append(out, n.Type)
	}
	return out
}

func mountDests(s *Spec) []string {
	var out []string
	for _, m := range s.Mounts {
		out = append(out, m.Destination)
	}
	return out
}

func TestNewDefaults(t *testing.T) {
	s, err := New()
	require.NoError(t, err)
	assert.Equal(t, "1.0.2", s.Version)
	assert.Equal(t, &specs.Root{Path: "rootfs", Readonly: true}, s.Root)
	assert.Empty(t, s.Hostname)
	p := s.Process
	assert.Equal(t, []string{"/pause"}, p.Args)
	assert.False(t, p.Terminal)
	assert.Equal(t, "/", p.Cwd)
	assert.Equal(t, specs.User{UID: 65535, GID: 65535}, p.User)
	assert.True(t, p.NoNewPrivileges)
	require.NotNil(t, p.OOMScoreAdj)
	assert.Equal(t, -998, *p.OOMScoreAdj)
	assert.Equal(t, DefaultCapabilities, p.Capabilities.Bounding)
	assert.Equal(t, DefaultCapabilities, p.Capabilities.Effective)
	assert.Equal(t, DefaultCapabilities, p.Capabilities.Permitted)
	assert.Empty(t, p.Capabilities.Ambient)
	assert.Empty(t, p.Capabilities.Inheritable)
	assert.Equal(t, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}}, p.Rlimits)

	assert.Equal(t, []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys"}, mountDests(s), "no /dev/shm of the runtime's own")
	assert.ElementsMatch(t, []specs.LinuxNamespaceType{"pid", "network", "ipc", "uts", "mount"}, nsTypes(s))
	assert.Nil(t, s.Linux.Seccomp, "the seccomp profile is chosen by an option")
	assert.Contains(t, s.Linux.MaskedPaths, "/proc/kcore")
	assert.Contains(t, s.Linux.ReadonlyPaths, "/proc/sys")
	require.NotNil(t, s.Linux.Resources.CPU)
	assert.Equal(t, uint64(2), *s.Linux.Resources.CPU.Shares)
	assert.Equal(t, []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, s.Linux.Resources.Devices)
}

// TestDefaultsAreRuntimeToolsDefaults checks the written-out defaults
// against runtime-tools' generate defaults with the pause's changes
// applied: the pause spec stays built on them.
func TestDefaultsAreRuntimeToolsDefaults(t *testing.T) {
	g, err := generate.New("linux")
	require.NoError(t, err)
	want := g.Config
	want.Version = DefaultOCIVersion
	want.Hostname = ""
	want.Root = &specs.Root{Path: "rootfs", Readonly: true}
	p := want.Process
	p.Args = []string{"/pause"}
	p.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	p.User = specs.User{UID: PauseUID, GID: PauseGID}
	p.NoNewPrivileges = true
	oom := DefaultOOMScoreAdj
	p.OOMScoreAdj = &oom
	p.Capabilities = capabilitySet(DefaultCapabilities)
	want.Mounts = slices.DeleteFunc(want.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" })
	want.Linux.Seccomp = nil
	want.Linux.MaskedPaths = defaultMaskedPaths
	want.Linux.ReadonlyPaths = defaultReadonlyPaths
	shares := uint64(2)
	want.Linux.Resources.CPU = &specs.LinuxCPU{Shares: &shares}
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)
	got, err := New()
	require.NoError(t, err)
	gotJSON, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(wantJSON), string(gotJSON))
}

func TestNewReturnsIndependentSpecs(t *testing.T) {
	a, err := New()
	require.NoError(t, err)
	a.Process.Args[0] = "/changed"
	a.Linux.MaskedPaths[0] = "/changed"
	a.Mounts[0].Options[0] = "changed"
	b, err := New()
	require.NoError(t, err)
	assert.Equal(t, "/pause", b.Process.Args[0])
	assert.Equal(t, "/proc/acpi", b.Linux.MaskedPaths[0])
	assert.Equal(t, "nosuid", b.Mounts[0].Options[0])
}

func TestCompose(t *testing.T) {
	var order []int
	step := func(i int, err error) Opt {
		return func(*Spec) error { order = append(order, i); return err }
	}
	boom := errors.New("boom")
	err := Compose(step(1, nil), step(2, boom), step(3, nil))(&Spec{})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, []int{1, 2}, order, "stops at the first error")

	_, err = New(step(4, boom))
	require.ErrorIs(t, err, boom)
	require.NoError(t, Compose()(&Spec{}))
}

func TestOptions(t *testing.T) {
	shm := specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/run/x/shm", Options: []string{"bind", "rw"}}
	tests := []struct {
		name  string
		opt   Opt
		check func(t *testing.T, s *Spec)
	}{
		{"args", WithArgs("/pause", "-P"), func(t *testing.T, s *Spec) {
			assert.Equal(t, []string{"/pause", "-P"}, s.Process.Args)
		}},
		{"env replaces a key", Compose(WithEnv("A=1", "B=2"), WithEnv("A=3")), func(t *testing.T, s *Spec) {
			assert.Contains(t, s.Process.Env, "A=3")
			assert.Contains(t, s.Process.Env, "B=2")
			assert.NotContains(t, s.Process.Env, "A=1")
		}},
		{"hostname", WithHostname("web-0"), func(t *testing.T, s *Spec) { assert.Equal(t, "web-0", s.Hostname) }},
		{"root", WithRoot("/var/lib/podsmith/pause-x", true), func(t *testing.T, s *Spec) {
			assert.Equal(t, &specs.Root{Path: "/var/lib/podsmith/pause-x", Readonly: true}, s.Root)
		}},
		{"user", WithUser(1000, 2000, 3000, 4000), func(t *testing.T, s *Spec) {
			assert.Equal(t, specs.User{UID: 1000, GID: 2000, AdditionalGids: []uint32{3000, 4000}}, s.Process.User)
		}},
		{"join a namespace by path", WithNamespace(specs.NetworkNamespace, "/run/netns/x"), func(t *testing.T, s *Spec) {
			assert.Contains(t, s.Linux.Namespaces, specs.LinuxNamespace{Type: "network", Path: "/run/netns/x"})
			assert.Len(t, s.Linux.Namespaces, 5, "replaced, not added")
		}},
		{"add a namespace", WithNamespace(specs.CgroupNamespace, ""), func(t *testing.T, s *Spec) {
			assert.Contains(t, nsTypes(s), specs.CgroupNamespace)
		}},
		{"host network drops net and uts and the hostname", Compose(WithHostname("x"), WithHostNetwork()), func(t *testing.T, s *Spec) {
			assert.ElementsMatch(t, []specs.LinuxNamespaceType{"pid", "ipc", "mount"}, nsTypes(s))
			assert.Empty(t, s.Hostname)
		}},
		{"host pid", WithHostPID(), func(t *testing.T, s *Spec) {
			assert.ElementsMatch(t, []specs.LinuxNamespaceType{"network", "ipc", "uts", "mount"}, nsTypes(s))
		}},
		{"host ipc", WithHostIPC(), func(t *testing.T, s *Spec) {
			assert.ElementsMatch(t, []specs.LinuxNamespaceType{"pid", "network", "uts", "mount"}, nsTypes(s))
		}},
		{"mounts add and replace by destination", Compose(WithMounts(shm), WithMounts(specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm"})), func(t *testing.T, s *Spec) {
			assert.Equal(t, []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/dev/shm"}, mountDests(s))
			assert.Equal(t, "/dev/shm", s.Mounts[5].Source)
		}},
		{"cgroups path", WithCgroupsPath("/podsmith/podsmith-x"), func(t *testing.T, s *Spec) {
			assert.Equal(t, "/podsmith/podsmith-x", s.Linux.CgroupsPath)
		}},
		{"oom score", WithOOMScoreAdj(0), func(t *testing.T, s *Spec) { assert.Equal(t, 0, *s.Process.OOMScoreAdj) }},
		{"no new privileges off", WithNoNewPrivileges(false), func(t *testing.T, s *Spec) { assert.False(t, s.Process.NoNewPrivileges) }},
		{"capabilities", WithCapabilities("CAP_KILL"), func(t *testing.T, s *Spec) {
			assert.Equal(t, &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}}, s.Process.Capabilities)
		}},
		{"rlimits replace by type", WithRlimits(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 64, Hard: 64}, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Soft: 10, Hard: 20}), func(t *testing.T, s *Spec) {
			assert.Equal(t, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 64, Hard: 64}, {Type: "RLIMIT_NPROC", Soft: 10, Hard: 20}}, s.Process.Rlimits)
		}},
		{"selinux labels", WithSELinuxLabels("system_u:system_r:container_t:s0:c1,c2", "system_u:object_r:container_file_t:s0:c1,c2"), func(t *testing.T, s *Spec) {
			assert.Equal(t, "system_u:system_r:container_t:s0:c1,c2", s.Process.SelinuxLabel)
			assert.Equal(t, "system_u:object_r:container_file_t:s0:c1,c2", s.Linux.MountLabel)
		}},
		{"seccomp", WithSeccomp(PauseProfile()), func(t *testing.T, s *Spec) { assert.Equal(t, PauseProfile(), s.Linux.Seccomp) }},
		{"privileged", Compose(WithSeccomp(PauseProfile()), WithSELinuxLabels("p", "m"), WithPrivileged([]string{"CAP_SYS_ADMIN", "CAP_KILL"})), func(t *testing.T, s *Spec) {
			assert.Equal(t, []string{"CAP_SYS_ADMIN", "CAP_KILL"}, s.Process.Capabilities.Bounding)
			assert.Nil(t, s.Linux.Seccomp)
			assert.Empty(t, s.Linux.MaskedPaths)
			assert.Empty(t, s.Linux.ReadonlyPaths)
			assert.Empty(t, s.Process.SelinuxLabel)
			assert.NotContains(t, s.Mounts[4].Options, "ro", "/sys is writable")
		}},
		{"annotations merge", Compose(WithAnnotations(map[string]string{"a": "1", "b": "2"}), WithAnnotations(map[string]string{"a": "3"})), func(t *testing.T, s *Spec) {
			assert.Equal(t, map[string]string{"a": "3", "b": "2"}, s.Annotations)
		}},
		{"oci version", WithOCIVersion("1.1.0"), func(t *testing.T, s *Spec) { assert.Equal(t, "1.1.0", s.Version) }},
		{"sysctls", WithSysctls(map[string]string{"net/ipv4/ip_forward": "1", "kernel.shmmax": "65536"}), func(t *testing.T, s *Spec) {
			assert.Equal(t, map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"}, s.Linux.Sysctl)
		}},
		{"no sysctls", WithSysctls(nil), func(t *testing.T, s *Spec) { assert.Nil(t, s.Linux.Sysctl) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opt)
			require.NoError(t, err)
			tt.check(t, s)
		})
	}
}

func TestOptionsRefuse(t *testing.T) {
	tests := []struct {
		name string
		opt  Opt
	}{
		{"no args", WithArgs()},
		{"empty command", WithArgs("")},
		{"env without =", WithEnv("NOVALUE")},
		{"env with empty key", WithEnv("=x")},
		{"env with NUL", WithEnv("A=\x00")},
		{"hostname with host network", Compose(WithHostNetwork(), WithHostname("x"))},
		{"empty root", WithRoot("", true)},
		{"relative mount destination", WithMounts(specs.Mount{Destination: "etc/resolv.conf"})},
		{"oom too low", WithOOMScoreAdj(-1001)},
		{"oom too high", WithOOMScoreAdj(1001)},
		{"bad capability", WithCapabilities("SYS_ADMIN")},
		{"bad rlimit type", WithRlimits(specs.POSIXRlimit{Type: "NOFILE"})},
		{"soft above hard", WithRlimits(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1})},
		{"empty oci version", WithOCIVersion("")},
		{"net sysctl with host network", Compose(WithHostNetwork(), WithSysctls(map[string]string{"net.core.somaxconn": "1024"}))},
		{"ipc sysctl with host ipc", Compose(WithHostIPC(), WithSysctls(map[string]string{"kernel.shmmax": "1"}))},
		{"node sysctl", WithSysctls(map[string]string{"kernel.panic": "1"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opt)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
		})
	}
}
