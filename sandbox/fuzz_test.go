package sandbox_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v2"

	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/sandbox"
)

func FuzzDecodeConfig(f *testing.F) {
	for _, name := range []string{"pod-config.json", "pod-config.yaml", "pod-config-names.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{}`, `{"metadata":{"name":"a","namespace":"b","uid":"c","attempt":1}}`,
		`{"labels":{},"annotations":{"a":""},"port_mappings":[],"dns_config":{}}`,
		`{"linux":{"security_context":{"namespace_options":{"network":"NODE","pid":1,"ipc":null}}}}`,
		`{"port_mappings":[{"protocol":"udp","container_port":53},{"protocol":7}]}`,
		`{"linux":{"security_context":{"run_as_user":{"value":-1},"supplemental_groups":[1,2]}}}`,
		`{"linux":{"resources":{"hugepage_limits":[{"page_size":"2MB","limit":1}],"unified":{"a":"b"}}}}`,
		`{"metadata":{}} {}`, `[]`, `null`, "", "metadata:\n  name: a\n", "a: [", "---\n...\n",
		"labels:\n  a: yes\n", "port_mappings:\n- {protocol: SCTP}\n", "{\"a\":1}]", "\xef\xbb\xbf{}",
		`{"metadata":{"name":"a"},"metadata":{"uid":"b"}}`, `{"hostname":"\u00e9\ud800"}`,
		"x: &a [*a]\n", "a: 1e400\n", `{"metadata":{"attempt":1e2}}`,
		// Deep, wide, aliased, several documents, echoed values.
		`{"labels":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "}",
		strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40),
		`{"labels":{"a":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + "}}",
		"labels: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
		"labels: " + strings.Repeat("{a: ", 40) + "1" + strings.Repeat("}", 40),
		"labels:\n" + strings.Repeat("- ", 40) + "x\n",
		"a:\n b:\n  c:\n   d:\n    e:\n     f:\n      g: [[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
		`{"linux":{"security_context":{"supplemental_groups":[` + strings.Repeat("0,", 2000) + "0]}}}",
		"a: &a [x,x,x,x]\nb: &b [*a,*a,*a,*a]\nc: [*b,*b,*b,*b]\n", "labels: {a: Tom & Jerry, b: '*x'}\n",
		"hostname: a\n...\nlinux: {}\n", "hostname: a\u0085---\u0085linux: {}", "hostname: \"a\n---\nb\"\n",
		"%YAML 1.1\n---\nhostname: a\n...\n# x\n", "hostname: a\n\ufeff---\nlinux: {}\n", "a: |\n  ---\n  ...\nb: ---x\n",
		"\xff\xfeh\x00:\x00 \x00a\x00", "root:$6$salt$" + strings.Repeat("h", 86) + ":19500:0:99999:7:::\n",
		`{"labels":{"a\u001b[31m":1}}`, `{"port_mappings":[{"protocol":"` + strings.Repeat("x", 100) + `"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c *sandbox.Config
		var err error
		if n := allocated(func() { c, err = sandbox.DecodeConfig(data) }); n > 50<<20 {
			t.Fatalf("DecodeConfig of %d bytes allocated %d bytes", len(data), n)
		}
		if err != nil {
			var de *sandbox.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, sandbox.ErrInvalidConfig) || de.Reason == "" {
				t.Fatalf("DecodeConfig error %#v is not a complete *DecodeError", err)
			}
			if c != nil {
				t.Fatalf("DecodeConfig returned a config with an error")
			}
			// What it echoes of the input is short and printable.
			if msg := de.Error(); len(msg) > 512 || strings.IndexFunc(msg, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 {
				t.Fatalf("DecodeConfig error is long or unprintable: %q", msg)
			}
			return
		}
		if c == nil {
			t.Fatal("DecodeConfig returned neither a config nor an error")
		}
		// YAML it decodes is one document to the parser too: the converter
		// would have dropped any other.
		if in := bytes.TrimSpace(data); in[0] != '{' {
			dec := yaml.NewDecoder(bytes.NewReader(in))
			var doc any
			if err := dec.Decode(&doc); err != nil || !errors.Is(dec.Decode(&doc), io.EOF) {
				t.Fatalf("DecodeConfig decoded YAML that is not one document: %v", err)
			}
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("json.Marshal of a decoded config: %v", err)
		}
		if len(out) > maxConfigSize {
			return // escaping grew it past the limit
		}
		back, err := sandbox.DecodeConfig(out)
		if err != nil {
			t.Fatalf("DecodeConfig of its own config's JSON %s: %v", out, err)
		}
		if !configsEqual(c, back) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v\nJSON: %s", c, back, out)
		}
	})
}

// configsEqual compares configs, taking empty and nil maps and slices as
// equal (omitempty cannot tell them apart, and neither can a pod).
func configsEqual(a, b *sandbox.Config) bool {
	return reflect.DeepEqual(emptyToNil(reflect.ValueOf(a)).Interface(), emptyToNil(reflect.ValueOf(b)).Interface())
}

// emptyToNil returns a deep copy of v with every empty map and slice nil.
func emptyToNil(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(emptyToNil(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			if out.Field(i).CanSet() {
				out.Field(i).Set(emptyToNil(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(emptyToNil(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), emptyToNil(it.Value()))
		}
		return out
	}
	return v
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Fuzz flags: which namespaces the pod shares with the node, and whether it
// is privileged.
const (
	fuzzHostNetwork = 1 << iota
	fuzzHostIPC
	fuzzHostPID
	fuzzPrivileged
)

func FuzzPlan(f *testing.F) {
	type seed struct {
		name, namespace, uid, hostname, logDir, sysctl, sysctlValue, server, annKey, annValue, cgroupParent string
		flags                                                                                               uint8
	}
	for _, s := range []seed{
		{"web", "default", "uid-1", "", "", "net.core.somaxconn", "1024", "10.96.0.10", "app", "web", "", 0},
		{"web", "default", "uid-1", "web-1", "/var/log/pods/x", "kernel.shmmax", "1", "2001:db8::1", sandbox.ShmSizeAnnotation, "128Mi", "/kubepods", fuzzHostNetwork},
		{"..", "a/b", "a\x00", "Web_1", "/a/../b", "kernel.panic", "1", "1.1.1.1\nnameserver 6.6.6.6", "io.podsmith.sandbox-id", "x", "kubepods.slice", fuzzHostIPC},
		{"a..b", "n", "u", "node-1", "relative", "net/ipv4/ip_forward", "1\n", "", "", "", "/a/../b", fuzzHostNetwork | fuzzHostIPC | fuzzHostPID},
		{strings.Repeat("a", 300), "-x", "_y", strings.Repeat("h", 64), "/proc/self/cwd/x", "fs.mqueue.msg_max", "10", "fe80::1%eth0", sandbox.ShmSizeAnnotation, "-1", "/", fuzzPrivileged},
		{"x", "y", "z", "", "/tmp", "", "", "127.0.0.53", "k", "\x00", "relative", 0},
	} {
		f.Add(s.name, s.namespace, s.uid, s.hostname, s.logDir, s.sysctl, s.sysctlValue, s.server, s.annKey, s.annValue, s.cgroupParent, s.flags)
	}

	b, h := planBuilder(f, sandbox.Options{})
	o := b.Options()

	f.Fuzz(func(t *testing.T, name, namespace, uid, hostname, logDir, sysctl, sysctlValue, server, annKey, annValue, cgroupParent string, flags uint8) {
		cfg := &sandbox.Config{
			Metadata:     sandbox.Metadata{Name: name, Namespace: namespace, UID: uid, Attempt: uint32(flags)},
			Hostname:     hostname,
			LogDirectory: logDir,
			Annotations:  map[string]string{annKey: annValue},
			Linux: &sandbox.LinuxConfig{
				CgroupParent: cgroupParent,
				SecurityContext: &sandbox.SecurityContext{
					NamespaceOptions: &sandbox.NamespaceOptions{},
					Privileged:       flags&fuzzPrivileged != 0,
				},
			},
		}
		if sysctl != "" {
			cfg.Linux.Sysctls = map[string]string{sysctl: sysctlValue}
		}
		if server != "" {
			cfg.DNSConfig = &sandbox.DNSConfig{Servers: []string{server}}
		}
		ns := cfg.Linux.SecurityContext.NamespaceOptions
		if flags&fuzzHostNetwork != 0 {
			ns.Network = sandbox.NamespaceNode
		}
		if flags&fuzzHostIPC != 0 {
			ns.Ipc = sandbox.NamespaceNode
		}
		if flags&fuzzHostPID != 0 {
			ns.Pid = sandbox.NamespaceNode
		}

		p, err := b.Plan(cfg)
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

		if !hexID.MatchString(p.ID) {
			t.Fatalf("ID %q", p.ID)
		}
		if p.Name != cfg.Metadata.SandboxName() || strings.ContainsAny(p.Name, "/\x00") || strings.Count(p.Name, "_") != 4 {
			t.Fatalf("name %q", p.Name)
		}
		if !under(p.BundleDir, o.RunDir) || p.BundleDir == o.RunDir || !strings.Contains(p.BundleDir, p.ID) {
			t.Fatalf("bundle %q is not under %q", p.BundleDir, o.RunDir)
		}
		if p.HostNetwork {
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
		if p.HostIPC {
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
		if p.HostNetwork {
			if p.Spec.Hostname != "" {
				t.Fatalf("host-network spec with hostname %q", p.Spec.Hostname)
			}
		} else if err := dns.ValidateHostname(p.Hostname); err != nil || p.Spec.Hostname != p.Hostname {
			t.Fatalf("hostname %q (spec %q): %v", p.Hostname, p.Spec.Hostname, err)
		}
		if p.HostPID != (flags&fuzzHostPID != 0) || p.Privileged != (flags&fuzzPrivileged != 0) {
			t.Fatal("namespace flags lost")
		}
	})
}
