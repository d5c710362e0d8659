package spec

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// SysctlError reports a sysctl that a pod may not set.
type SysctlError struct {
	Name   string // as given
	Value  string
	Reason string
}

func (e *SysctlError) Error() string {
	return fmt.Sprintf("spec: sysctl %q: %s", e.Name, e.Reason)
}

// Is makes a SysctlError match ErrInvalid.
func (e *SysctlError) Is(target error) bool { return target == ErrInvalid }

// sysctlClass is the namespace a namespaced sysctl belongs to.
type sysctlClass int

const (
	notNamespaced sysctlClass = iota
	ipcSysctl
	netSysctl
)

func classify(name string) sysctlClass {
	switch {
	case strings.HasPrefix(name, "kernel.shm"),
		strings.HasPrefix(name, "kernel.msg"),
		name == "kernel.sem",
		strings.HasPrefix(name, "fs.mqueue."):
		return ipcSysctl
	case strings.HasPrefix(name, "net."):
		return netSysctl
	}
	return notNamespaced
}

// maxSysctlName bounds a sysctl name (the longest real ones, with an
// interface name inside, are under 100 bytes).
const maxSysctlName = 256

// NormalizeSysctlName returns name in dotted form. A name whose first
// separator is '/' is in slash form ("net/ipv4/conf/eth0.100/forwarding"):
// its slashes become dots and its dots slashes, as sysctl(8) and Kubernetes
// convert them, so a dot inside an interface name survives.
func NormalizeSysctlName(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, name)
}

// MaxSysctlValueLen is the longest a sysctl's value may be: what one
// write to /proc/sys takes on every kernel (a 4 KiB page, less the
// terminating NUL; kernels with larger pages take more, which no
// namespaced sysctl needs).
const MaxSysctlValueLen = 4095

// NormalizeSysctls checks a pod's sysctls and returns them with dotted
// names. Only namespaced sysctls are accepted: kernel.shm*, kernel.msg*,
// kernel.sem and fs.mqueue.* (not with hostIPC), and net.* (not with
// hostNetwork). Names must be made of letters, digits, '_', '-', '.' and
// '/' with no empty element; names and values may not contain a newline or
// NUL (values may contain spaces: net.ipv4.ping_group_range takes
// "0 2147483647"), and values are at most MaxSysctlValueLen bytes. Every problem is returned, joined, each a *SysctlError.
func NormalizeSysctls(sysctls map[string]string, hostNetwork, hostIPC bool) (map[string]string, error) {
	out := make(map[string]string, len(sysctls))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(sysctls)) {
		value := sysctls[name]
		fail := func(format string, args ...any) {
			errs = append(errs, &SysctlError{Name: name, Value: value, Reason: fmt.Sprintf(format, args...)})
		}
		if reason := checkSysctlName(name); reason != "" {
			fail("%s", reason)
			continue
		}
		if strings.ContainsAny(value, "\n\r\x00") {
			fail("value contains a newline or NUL")
			continue
		}
		if len(value) > MaxSysctlValueLen {
			fail("value is %d bytes long, at most %d allowed (a write to /proc/sys takes one page)", len(value), MaxSysctlValueLen)
			continue
		}
		norm := NormalizeSysctlName(name)
		if _, dup := out[norm]; dup {
			fail("set twice (as %q in another form)", norm)
			continue
		}
		switch classify(norm) {
		case notNamespaced:
			fail("is not a namespaced sysctl: a pod may set kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.* only")
			continue
		case ipcSysctl:
			if hostIPC {
				fail("is an IPC namespace sysctl, and the pod uses the host's IPC namespace")
				continue
			}
		case netSysctl:
			if hostNetwork {
				fail("is a network namespace sysctl, and the pod uses the host's network")
				continue
			}
		}
		out[norm] = value
	}
	return out, errors.Join(errs...)
}

func checkSysctlName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case len(name) > maxSysctlName:
		return fmt.Sprintf("name longer than %d bytes", maxSysctlName)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '_' || r == '-' || r == '.' || r == '/'
		if !ok {
			return fmt.Sprintf("name contains %q (allowed: letters, digits, '_', '-', '.', '/')", r)
		}
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' || name[i] == '/' {
			if i == start {
				return "name has an empty element"
			}
			start = i + 1
		}
	}
	return ""
}

// WithSysctls sets sysctls after NormalizeSysctls, judging host network and
// host IPC from the spec's namespaces (so apply it after the namespace
// options). It replaces any sysctls already set.
func WithSysctls(sysctls map[string]string) Opt {
	return func(s *Spec) error {
		norm, err := NormalizeSysctls(sysctls, !hasNamespace(s, specs.NetworkNamespace), !hasNamespace(s, specs.IPCNamespace))
		if err != nil {
			return err
		}
		if len(norm) == 0 {
			norm = nil
		}
		ensureLinux(s).Sysctl = norm
		return nil
	}
}

// SysctlNamespace returns the namespace a sysctl (in dotted form) belongs
// to: the IPC or the network namespace; "" for one that is not namespaced.
func SysctlNamespace(name string) specs.LinuxNamespaceType {
	switch classify(name) {
	case ipcSysctl:
		return specs.IPCNamespace
	case netSysctl:
		return specs.NetworkNamespace
	}
	return ""
}

// SysctlInterface returns the network interface a net sysctl (in dotted
// form) is about: X of net.ipv4.conf.X.*, net.ipv6.conf.X.*,
// net.ipv4.neigh.X.* and net.ipv6.neigh.X.*, with its dots back; "" for
// any other sysctl and for the all, default and lo entries, which exist in
// every new network namespace.
func SysctlInterface(name string) string {
	f := strings.Split(name, ".")
	if len(f) < 5 || f[0] != "net" || (f[1] != "ipv4" && f[1] != "ipv6") || (f[2] != "conf" && f[2] != "neigh") {
		return ""
	}
	switch ifc := strings.ReplaceAll(f[3], "/", "."); ifc {
	case "all", "default", "lo":
		return ""
	default:
		return ifc
	}
}
