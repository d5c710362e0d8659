package sandbox

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/spec"
)

// Limits on a pod config (Kubernetes' own where it has one).
const (
	maxNameLen      = 253 // metadata.name: a DNS subdomain
	maxNamespaceLen = 63  // metadata.namespace: a DNS label
	maxUIDLen       = 128
	maxKeyLen       = 317 // a qualified name: 253-byte prefix, '/', 63-byte name
	maxValueLen     = 64 << 10
	maxMetadataSize = 256 << 10 // labels and annotations together, as Kubernetes limits annotations
	maxLogDirLen    = 4096
	maxID           = 1<<32 - 2 // the largest uid/gid a process can have
	// maxPortMappings bounds a pod's port mappings. Neither kubelet nor
	// CRI-O has a limit, but no real pod publishes hundreds of host ports,
	// and each costs about 30-50 ms in CNI's portmap plugin here (so 128
	// take about 4 s; the 5000 of an attack took minutes).
	maxPortMappings   = 128
	ShmSizeAnnotation = "io.kubernetes.cri-o.ShmSize"
)

// problems collects the problems of one config.
type problems struct{ list []*Problem }

func (p *problems) add(field, reason string, err error) {
	p.list = append(p.list, &Problem{Field: field, Reason: reason, Err: err})
}

func (p *problems) addf(field, format string, args ...any) {
	p.add(field, fmt.Sprintf(format, args...), nil)
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ConfigError{Problems: p.list}
}

// nameChars reports whether s is made of letters, digits, '-' and '.', and
// starts with a letter or digit: safe in file names and in the sandbox
// name's "_"-separated fields.
func nameChars(s string) bool {
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '-' && r != '.') {
			return false
		}
	}
	return s != ""
}

func (p *problems) metadata(m Metadata) {
	check := func(field, value string, max int) {
		switch {
		case value == "":
			p.addf(field, "required")
		case len(value) > max:
			p.addf(field, "longer than %d bytes", max)
		case !nameChars(value):
			p.addf(field, "%q must be letters, digits, '-' and '.', starting with a letter or digit", truncate(value))
		}
	}
	check("metadata.name", m.Name, maxNameLen)
	check("metadata.namespace", m.Namespace, maxNamespaceLen)
	check("metadata.uid", m.UID, maxUIDLen)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// logDirectory checks that dir is a clean absolute path none of whose
// existing components is a symlink: a symlink could point the runtime's
// log writes anywhere on the node.
func (p *problems) logDirectory(dir string) {
	const field = "log_directory"
	switch {
	case dir == "":
		return
	case len(dir) > maxLogDirLen:
		p.addf(field, "longer than %d bytes", maxLogDirLen)
		return
	case strings.ContainsAny(dir, "\x00\n"):
		p.addf(field, "contains NUL or a newline")
		return
	case !filepath.IsAbs(dir):
		p.addf(field, "%q is not an absolute path", truncate(dir))
		return
	case filepath.Clean(dir) != dir:
		p.addf(field, "%q is not a clean path (%q)", truncate(dir), filepath.Clean(dir))
		return
	}
	prefix := "/"
	for _, elem := range strings.Split(dir[1:], "/") {
		prefix = filepath.Join(prefix, elem)
		st, err := os.Lstat(prefix)
		if errors.Is(err, os.ErrNotExist) {
			return // the rest does not exist yet: no symlink in it
		}
		if err != nil {
			p.add(field, err.Error(), err)
			return
		}
		if st.Mode()&os.ModeSymlink != 0 {
			target, _ := filepath.EvalSymlinks(prefix)
			p.addf(field, "%s is a symlink (to %q); give the real path", prefix, target)
			return
		}
		if !st.IsDir() {
			p.addf(field, "%s is not a directory", prefix)
			return
		}
	}
}

func (p *problems) dnsConfig(err error) {
	var errs []error
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		errs = u.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var ve *dns.ValidationError
		if errors.As(e, &ve) {
			field := "dns_config." + ve.Field
			if ve.Index >= 0 {
				field += "[" + strconv.Itoa(ve.Index) + "]"
			}
			reason := ve.Reason
			if ve.Index >= 0 || ve.Value != "" {
				reason = fmt.Sprintf("%q: %s", truncate(ve.Value), ve.Reason)
			}
			p.add(field, reason, ve)
			continue
		}
		p.add("dns_config", e.Error(), e)
	}
}

func (p *problems) portMappings(pms []PortMapping) {
	if len(pms) > maxPortMappings {
		p.addf("port_mappings", "%d mappings, more than %d", len(pms), maxPortMappings)
		return
	}
	// A host port is taken on one address, or on every address (host_ip
	// empty, 0.0.0.0 or ::, as CNI's portmap treats them): a second
	// mapping of the same protocol and port must not overlap the first,
	// or one of them silently shadows the other.
	type key struct {
		proto Protocol
		port  int32
	}
	type use struct {
		ip    string // "" for every address
		index int
	}
	taken := map[key][]use{}
	for i, pm := range pms {
		field := fmt.Sprintf("port_mappings[%d]", i)
		if pm.Protocol < ProtocolTCP || pm.Protocol > ProtocolSCTP {
			p.addf(field+".protocol", "%d is not TCP (0), UDP (1) or SCTP (2)", pm.Protocol)
		}
		if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
			p.addf(field+".container_port", "%d is not a port (1-65535)", pm.ContainerPort)
		}
		if pm.HostPort < 0 || pm.HostPort > 65535 {
			p.addf(field+".host_port", "%d is not a port (0-65535, 0 for none)", pm.HostPort)
		}
		ip := ""
		if pm.HostIP != "" {
			addr, err := netip.ParseAddr(pm.HostIP)
			if err != nil {
				p.add(field+".host_ip", fmt.Sprintf("%q is not an IP address", truncate(pm.HostIP)), err)
				continue
			}
			if !addr.IsUnspecified() {
				ip = addr.Unmap().String()
			}
		}
		if pm.HostPort <= 0 {
			continue
		}
		k := key{pm.Protocol, pm.HostPort}
		for _, u := range taken[k] {
			if u.ip == "" || ip == "" || u.ip == ip {
				p.addf(field+".host_port", "%s %d overlaps port_mappings[%d] (the same port, on %s)", pm.Protocol, pm.HostPort, u.index, overlapOn(u.ip, ip))
				break
			}
		}
		taken[k] = append(taken[k], use{ip, i})
	}
}

func overlapOn(a, b string) string {
	switch {
	case a == "" || b == "":
		return "every address"
	default:
		return a
	}
}

// keyValues checks labels or annotations and returns their size.
func (p *problems) keyValues(field string, m map[string]string) int {
	size := 0
	for k, v := range m {
		size += len(k) + len(v)
		f := fmt.Sprintf("%s[%q]", field, truncate(k))
		switch {
		case k == "":
			p.addf(f, "empty key")
		case len(k) > maxKeyLen:
			p.addf(f, "key longer than %d bytes", maxKeyLen)
		case strings.IndexFunc(k, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r))
		}) >= 0:
			p.addf(f, "key must be letters, digits, '-', '_', '.' and '/'")
		}
		if len(v) > maxValueLen {
			p.addf(f, "value longer than %d bytes", maxValueLen)
		}
		if strings.ContainsRune(v, 0) {
			p.addf(f, "value contains NUL")
		}
	}
	return size
}

// parseQuantity parses a byte size: an integer with an optional suffix
// Ki, Mi, Gi, Ti (powers of 1024) or k, M, G, T (of 1000), as Kubernetes
// quantities are written.
func parseQuantity(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size (an integer with an optional suffix Ki, Mi, Gi, Ti, k, M, G or T)")
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("too large")
	}
	return n * mult, nil
}

func (p *problems) sysctls(field string, err error) {
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var se *spec.SysctlError
		if errors.As(e, &se) {
			p.add(fmt.Sprintf("%s[%q]", field, truncate(se.Name)), se.Reason, se)
		}
	}
}
