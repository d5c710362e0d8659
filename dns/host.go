package dns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// DefaultHostResolvConf is the host resolv.conf that [FromHost] reads when
// given no path.
const DefaultHostResolvConf = "/etc/resolv.conf"

// FromHost reads the host's resolv.conf at path ([DefaultHostResolvConf]
// when path is "") and returns the content a pod should get when it has no
// DNS configuration of its own; see [SanitizeHost] for what is changed.
//
// A read error is returned wrapped (it names the path, and errors.Is(err,
// fs.ErrNotExist) still works for a missing file). A file whose nameservers
// are all loopback addresses gives a *[NoNameserversError] with Path set,
// unless hostNetwork.
func FromHost(path string, hostNetwork bool) ([]byte, error) {
	if path == "" {
		path = DefaultHostResolvConf
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dns: host resolv.conf: %w", err)
	}
	out, _, err := SanitizeHost(data, hostNetwork)
	if err != nil {
		if nerr, ok := errors.AsType[*NoNameserversError](err); ok {
			nerr.Path = path
		}
		return nil, err
	}
	return out, nil
}

// SanitizeHost is the part of [FromHost] that needs no file: it takes the
// content of a host resolv.conf and returns what a pod should get, and the
// nameserver addresses it removed (as written in data).
//
// With hostNetwork, the pod shares the node's network namespace and data is
// returned unchanged. Otherwise every "nameserver" line whose address is a
// loopback address (127.0.0.0/8, ::1, also when written as an IPv4-mapped
// IPv6 address, with a zone, or in a short form such as 127.1 that
// inet_aton accepts) is dropped, since nothing listens there inside the
// pod's network namespace (systemd-resolved's stub 127.0.0.53 is the usual
// case). Every other line, comments, search and options included, is kept
// byte for byte. The result may share memory with data.
//
// If lines were dropped and no usable nameserver is left (one whose
// address parses as an IP address), SanitizeHost returns a
// *[NoNameserversError] (with an empty Path), the removed addresses and nil
// content. When nothing was dropped, data is returned as it is, even if it
// has no nameserver at all: that is the host's own choice, not something
// this function broke.
func SanitizeHost(data []byte, hostNetwork bool) ([]byte, []string, error) {
	if hostNetwork {
		return data, nil, nil
	}
	var (
		out     []byte
		removed []string
		usable  int
	)
	for rest := data; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]

		addr, ok := nameserverAddr(line)
		if ok {
			ip, valid := parseNameserver(addr)
			if valid && ip.IsLoopback() {
				if out == nil {
					// First removal: copy what was kept so far.
					out = make([]byte, 0, len(data))
					out = append(out, data[:len(data)-len(rest)-len(line)]...)
				}
				removed = append(removed, string(addr))
				continue
			}
			if valid {
				usable++
			}
		}
		if out != nil {
			out = append(out, line...)
		}
	}
	if len(removed) == 0 {
		return data, nil, nil
	}
	if usable == 0 {
		return nil, removed, &NoNameserversError{Removed: removed}
	}
	return out, removed, nil
}

// nameserverAddr reports whether line is a "nameserver" line and returns
// its address field. It is lenient, so that it sees a nameserver wherever
// one of the common resolvers would: leading blanks are skipped (Go's
// resolver does), and the address ends at a blank, '#' or ';' (glibc's
// does).
func nameserverAddr(line []byte) ([]byte, bool) {
	const keyword = "nameserver"
	s := bytes.TrimLeft(line, " \t")
	if !bytes.HasPrefix(s, []byte(keyword)) {
		return nil, false
	}
	s = s[len(keyword):]
	if len(s) == 0 || !isBlank(s[0]) {
		return nil, false
	}
	s = bytes.TrimLeft(s, " \t\r\v\f")
	end := bytes.IndexAny(s, " \t\r\n\v\f#;")
	if end < 0 {
		end = len(s)
	}
	return s[:end], true
}

func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// parseNameserver parses a nameserver address the way a resolver might:
// as an IP address (glibc also accepts an IPv6 address with an empty zone,
// and musl and glibc accept the inet_aton forms of IPv4). The zone is
// dropped and an IPv4-mapped address unmapped.
func parseNameserver(s []byte) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(string(s)); err == nil {
		return ip.WithZone("").Unmap(), true
	}
	if i := bytes.IndexByte(s, '%'); i >= 0 {
		if ip, err := netip.ParseAddr(string(s[:i])); err == nil && ip.Is6() {
			return ip.Unmap(), true
		}
	}
	return inetAton(s)
}

// inetAton parses an IPv4 address as inet_aton(3) does: one to four parts
// separated by '.', each decimal, octal (leading 0) or hexadecimal (leading
// 0x); the last part fills the remaining bytes ("127.1" is 127.0.0.1).
func inetAton(s []byte) (netip.Addr, bool) {
	var parts [4]uint64
	n := 0
	for {
		if n == len(parts) || len(s) == 0 || s[0] < '0' || s[0] > '9' {
			return netip.Addr{}, false
		}
		base := uint64(10)
		if s[0] == '0' {
			base = 8
			s = s[1:]
			if len(s) > 0 && (s[0] == 'x' || s[0] == 'X') {
				base = 16
				s = s[1:]
			}
		}
		var v uint64
		for len(s) > 0 {
			d, ok := digitValue(s[0], base)
			if !ok {
				break
			}
			v = v*base + d
			if v > 0xffffffff {
				return netip.Addr{}, false
			}
			s = s[1:]
		}
		parts[n] = v
		n++
		if len(s) == 0 {
			break
		}
		if s[0] != '.' {
			return netip.Addr{}, false
		}
		s = s[1:]
	}
	// Every part but the last is one byte; the last fills the rest.
	var v uint64
	for i := range n - 1 {
		if parts[i] > 0xff {
			return netip.Addr{}, false
		}
		v |= parts[i] << (24 - 8*i)
	}
	last := parts[n-1]
	if last > 0xffffffff>>(8*(n-1)) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func digitValue(c byte, base uint64) (uint64, bool) {
	var d uint64
	switch {
	case c >= '0' && c <= '9':
		d = uint64(c - '0')
	case c >= 'a' && c <= 'f':
		d = uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		d = uint64(c-'A') + 10
	default:
		return 0, false
	}
	return d, d < base
}
