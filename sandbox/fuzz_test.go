package sandbox_test

import (
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

func FuzzPlan(f *testing.F) {
	type seed struct {
		name, namespace, uid, hostname, logDir, sysctl, sysctlValue, server, annKey, annValue, cgroupParent string
		flags                                                                                               uint8
		hostID, length                                                                                      uint32
	}
	for _, s := range []seed{
		{"web", "default", "uid-1", "", "", "net.core.somaxconn", "1024", "10.96.0.10", "app", "web", "", 0, 1 << 30, 65536},
		{"web", "default", "uid-1", "web-1", "/var/log/pods/x", "kernel.shmmax", "1", "2001:db8::1", pod.ShmSizeAnnotation, "128Mi", "/kubepods", fuzzHostNetwork, 1 << 30, 65536},
		{"..", "a/b", "a\x00", "Web_1", "/a/../b", "kernel.panic", "1", "1.1.1.1\nnameserver 6.6.6.6", "io.podsmith.sandbox-id", "x", "kubepods.slice", fuzzHostIPC, 1 << 30, 65536},
		{"a..b", "n", "u", "node-1", "relative", "net/ipv4/ip_forward", "1\n", "", "", "", "/a/../b", fuzzHostNetwork | fuzzHostIPC | fuzzHostPID, 1 << 30, 65536},
		{strings.Repeat("a", 300), "-x", "_y", strings.Repeat("h", 64), "/proc/self/cwd/x", "fs.mqueue.msg_max", "10", "fe80::1%eth0", pod.ShmSizeAnnotation, "-1", "/", fuzzPrivileged, 1 << 30, 65536},
		{"x", "y", "z", "", "/tmp", "", "", "127.0.0.53", "k", "\x00", "relative", 0, 1 << 30, 65536},
		{"u", "n", "i", "h", "", "net.ipv4.ping_group_range", "0 70000", "", "", "", "", fuzzUserNS, 1 << 30, 65536},
		{"u", "n", "i", "h", "", "", "", "", "", "", "", fuzzUserNS | fuzzOwnPID, 0, 1},
		{"u", "n", "i", "h", "", "", "", "", "", "", "", fuzzUserNS, 1<<32 - 1, 2},
	} {
		f.Add(s.name, s.namespace, s.uid, s.hostname, s.logDir, s.sysctl, s.sysctlValue, s.server, s.annKey, s.annValue, s.cgroupParent, s.flags, s.hostID, s.length)
	}

	b, h := planBuilder(f, sandbox.Options{})
	o := b.Options()
	// The same config, to a Builder that gives pauses only to pods that
	// share a PID namespace: valid or not alike, and pinned as it says.
	nb, nh := planBuilder(f, sandbox.Options{PauseMode: sandbox.PauseForSharedPID})

	f.Fuzz(func(t *testing.T, name, namespace, uid, hostname, logDir, sysctl, sysctlValue, server, annKey, annValue, cgroupParent string, flags uint8, hostID, length uint32) {
		cfg := &pod.Config{
			Metadata:     pod.Metadata{Name: name, Namespace: namespace, UID: uid, Attempt: uint32(flags)},
			Hostname:     hostname,
			LogDirectory: logDir,
			Annotations:  map[string]string{annKey: annValue},
			Linux: &pod.LinuxConfig{
				CgroupParent: cgroupParent,
				SecurityContext: &pod.SecurityContext{
					NamespaceOptions: &pod.NamespaceOptions{},
					Privileged:       flags&fuzzPrivileged != 0,
				},
			},
		}
		if sysctl != "" {
			cfg.Linux.Sysctls = map[string]string{sysctl: sysctlValue}
		}
		if server != "" {
			cfg.DNSConfig = &pod.DNSConfig{Servers: []string{server}}
		}
		ns := cfg.Linux.SecurityContext.NamespaceOptions
		if flags&fuzzHostNetwork != 0 {
			ns.Network = pod.NamespaceNode
		}
		if flags&fuzzHostIPC != 0 {
			ns.Ipc = pod.NamespaceNode
		}
		if flags&fuzzHostPID != 0 {
			ns.Pid = pod.NamespaceNode
		} else if flags&fuzzOwnPID != 0 {
			ns.Pid = pod.NamespaceContainer
		}
		if flags&fuzzUserNS != 0 {
			m := []pod.IDMapping{{HostID: hostID, Length: length}}
			ns.UsernsOptions = &pod.UserNamespace{Mode: pod.NamespacePod, Uids: m, Gids: m}
		}

		np, nerr := nb.Plan(cfg)
		if len(nh.Ops()) != 0 {
			t.Fatalf("Plan touched the host: %v", nh.Ops())
		}
		p, err := b.Plan(cfg)
		// Valid alike in both modes, but for a user namespace in a pod
		// that gets no pause (refused: ErrUserNamespace).
		noPauseUserNS := flags&fuzzUserNS != 0 && ns.Pid != pod.NamespacePod
		if (err == nil) != (nerr == nil) && !(noPauseUserNS && err == nil && errors.Is(nerr, sandbox.ErrUserNamespace)) {
			t.Fatalf("valid in one pause mode, not in the other: %v / %v", err, nerr)
		}
		if nerr == nil {
			wantNoPause := ns.Pid != pod.NamespacePod
			pinned := func(path string, want bool) bool {
				return want == (path != "") && (path == "" || under(path, np.BundleDir) && path != np.BundleDir)
			}
			if np.NoPause != wantNoPause || (np.Spec == nil) != wantNoPause || (np.Files.Rootfs == "") != wantNoPause ||
				!pinned(np.IPCNSPath, wantNoPause && ns.Ipc != pod.NamespaceNode) || !pinned(np.UTSNSPath, wantNoPause && ns.Network != pod.NamespaceNode) {
				t.Fatalf("pid %s: no pause %v, spec %v, rootfs %q, pins %q %q", ns.Pid, np.NoPause, np.Spec != nil, np.Files.Rootfs, np.IPCNSPath, np.UTSNSPath)
			}
		}
		if len(h.Ops()) != 0 {
			t.Fatalf("Plan touched the host: %v", h.Ops())
		}
		if err != nil {
			if p != nil {
				t.Fatal("Plan returned a plan with an error")
			}
			var ce *sandbox.ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, sandbox.ErrInvalidConfig) || len(ce.Problems) == 0 {
				t.Fatalf("Plan error %#v is not a *ConfigError with problems", err)
			}
			for _, prob := range ce.Problems {
				if prob == nil || prob.Reason == "" {
					t.Fatalf("problem without a reason in %v", err)
				}
			}
			return
		}

		hostNetwork, hostIPC := flags&fuzzHostNetwork != 0, flags&fuzzHostIPC != 0
		if !hexID.MatchString(p.ID) {
			t.Fatalf("ID %q", p.ID)
		}
		if p.Name != cfg.Metadata.SandboxName() || strings.ContainsAny(p.Name, "/\x00") || strings.Count(p.Name, "_") != 4 {
			t.Fatalf("name %q", p.Name)
		}
		if !under(p.BundleDir, o.RunDir) || p.BundleDir == o.RunDir || !strings.Contains(p.BundleDir, p.ID) {
			t.Fatalf("bundle %q is not under %q", p.BundleDir, o.RunDir)
		}
		if hostNetwork {
			if p.NetnsPath != "" {
				t.Fatalf("host-network pod with netns %q", p.NetnsPath)
			}
		} else if filepath.Dir(p.NetnsPath) != o.NetnsDir {
			t.Fatalf("netns %q is not in %q", p.NetnsPath, o.NetnsDir)
		}
		for _, path := range []string{p.Files.ResolvConf, p.Files.Hostname, p.Files.Hosts, p.Files.Rootfs} {
			if !under(path, p.BundleDir) || path == p.BundleDir {
				t.Fatalf("%q is not in the bundle %q", path, p.BundleDir)
			}
		}
		if hostIPC {
			if p.Files.Shm != "/dev/shm" || p.ShmSize != 0 {
				t.Fatalf("host-IPC pod with shm %q of %d bytes", p.Files.Shm, p.ShmSize)
			}
		} else if !under(p.Files.Shm, p.BundleDir) || p.ShmSize <= 0 || p.ShmSize > o.MaxShmSize {
			t.Fatalf("shm %q of %d bytes", p.Files.Shm, p.ShmSize)
		}
		if !under(p.CgroupsPath, p.CgroupParent) || p.CgroupsPath == p.CgroupParent || !strings.HasSuffix(p.CgroupsPath, p.ID) {
			t.Fatalf("cgroupsPath %q is not under the parent %q", p.CgroupsPath, p.CgroupParent)
		}
		if p.Spec == nil || p.Spec.Linux == nil || p.Spec.Linux.CgroupsPath != p.CgroupsPath {
			t.Fatal("incomplete spec")
		}
		if hostNetwork {
			if p.Spec.Hostname != "" {
				t.Fatalf("host-network spec with hostname %q", p.Spec.Hostname)
			}
		} else if err := dns.ValidateHostname(p.Hostname); err != nil || p.Spec.Hostname != p.Hostname {
			t.Fatalf("hostname %q (spec %q): %v", p.Hostname, p.Spec.Hostname, err)
		}
		if flags&fuzzUserNS != 0 {
			// Only what the rules allow got through.
			if hostID == 0 || length == 0 || uint64(hostID)+uint64(length) >= 1<<32 || flags&(fuzzHostNetwork|fuzzHostIPC|fuzzHostPID) != 0 {
				t.Fatalf("user namespace %d+%d with flags %b accepted", hostID, length, flags)
			}
			if filepath.Dir(p.UserNSPath) != p.BundleDir || len(p.Spec.Linux.UIDMappings) != 1 || p.Spec.Linux.UIDMappings[0].HostID != hostID ||
				!slices.ContainsFunc(p.Spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace && n.Path == p.UserNSPath }) {
				t.Fatalf("user namespace not in the spec: %q %+v", p.UserNSPath, p.Spec.Linux)
			}
		} else if p.UserNSPath != "" {
			t.Fatalf("a user namespace nobody asked for: %q", p.UserNSPath)
		}
		hasPID := slices.ContainsFunc(p.Spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
		if hasPID == (flags&fuzzHostPID != 0) || p.Spec.Annotations[spec.AnnotationPrivileged] != strconv.FormatBool(flags&fuzzPrivileged != 0) {
			t.Fatal("namespace flags lost")
		}
	})
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Fuzz flags: which namespaces the pod shares with the node, and whether it
// is privileged.
const (
	fuzzHostNetwork = 1 << iota
	fuzzHostIPC
	fuzzHostPID
	fuzzPrivileged
	fuzzOwnPID // pid CONTAINER (unless host PID)
	fuzzUserNS // a user namespace of the pod's own, mapping length IDs from hostID
)
