package dns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Limits on a pod's DNS configuration. They are the resolver's and
// Kubernetes' limits: glibc uses at most three nameservers, and the
// kubelet caps the search list.
const (
	// MaxNameservers is the most nameservers a Config may list.
	MaxNameservers = 3
	// MaxSearchDomains is the most search domains a Config may list.
	MaxSearchDomains = 32
	// MaxSearchLineChars is the longest the search domains may be, joined
	// by single spaces (the "search " keyword not counted).
	MaxSearchLineChars = 2048
	// MaxOptionsLineChars is the longest the options may be, joined by
	// single spaces (the "options " keyword not counted).
	MaxOptionsLineChars = 2048
	// MaxHostnameLen is the longest a pod hostname may be: the kernel's
	// HOST_NAME_MAX, and kubelet's bound for a hostname it sends as an
	// FQDN (setHostnameAsFQDN). Each of its labels is at most 63.
	MaxHostnameLen = 64
)

// Field names used in ValidationError.Field.
const (
	fieldServers  = "servers"
	fieldSearches = "searches"
	fieldOptions  = "options"
	fieldHostname = "hostname"
)

// maxDomainLen is the longest a search domain may be, a trailing '.' not
// counted; maxLabelLen the longest one of its labels.
const (
	maxDomainLen = 253
	maxLabelLen  = 63
)

// Config is a pod's DNS configuration (CRI's DNSConfig). The zero value
// means "no DNS configuration": the caller then uses the host's
// resolv.conf (see [FromHost]).
type Config struct {
	// Servers are nameserver IP addresses, IPv4 or IPv6 (an IPv6 zone such
	// as fe80::1%eth0 is allowed).
	Servers []string
	// Searches are search domains.
	Searches []string
	// Options are resolver options such as "ndots:5" or "edns0".
	Options []string
}

// IsZero reports whether c has no servers, no searches and no options.
func (c Config) IsZero() bool {
	return len(c.Servers) == 0 && len(c.Searches) == 0 && len(c.Options) == 0
}

// Validate checks c against the limits and rules of this package and returns
// every problem it finds, joined with errors.Join, each one a
// *[ValidationError] (so errors.Is(err, [ErrInvalid]) holds). It returns nil
// for a valid Config, including the zero Config.
//
// No entry may contain whitespace, a control character (newline, carriage
// return, NUL, ...), a non-ASCII byte, '#' or ';': any of these could add a
// line or a comment to resolv.conf.
func (c Config) Validate() error {
	var errs []error
	add := func(field string, index int, value, reason string) {
		errs = append(errs, newValidationError(field, index, value, reason))
	}

	if n := len(c.Servers); n > MaxNameservers {
		add(fieldServers, -1, "", fmt.Sprintf("%d nameservers, at most %d allowed", n, MaxNameservers))
	}
	for i, s := range c.Servers {
		if reason := checkServer(s); reason != "" {
			add(fieldServers, i, s, reason)
		}
	}

	if n := len(c.Searches); n > MaxSearchDomains {
		add(fieldSearches, -1, "", fmt.Sprintf("%d search domains, at most %d allowed", n, MaxSearchDomains))
	}
	if n := joinedLen(c.Searches); n > MaxSearchLineChars {
		add(fieldSearches, -1, "", fmt.Sprintf("search line is %d characters, at most %d allowed", n, MaxSearchLineChars))
	}
	for i, s := range c.Searches {
		if reason := checkSearch(s); reason != "" {
			add(fieldSearches, i, s, reason)
		}
	}

	if n := joinedLen(c.Options); n > MaxOptionsLineChars {
		add(fieldOptions, -1, "", fmt.Sprintf("options line is %d characters, at most %d allowed", n, MaxOptionsLineChars))
	}
	for i, o := range c.Options {
		if reason := checkOption(o); reason != "" {
			add(fieldOptions, i, o, reason)
		}
	}

	return errors.Join(errs...)
}

// Render validates c and renders it as resolv.conf: one "nameserver"
// line per server (in its canonical form, as printed by net/netip), then a
// "search" line if there are search domains, then an "options" line if
// there are options; every line ends in "\n". A zero Config renders to an
// empty file. On a validation error Render returns nil and the error of
// [Config.Validate].
func Render(c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, s := range c.Servers {
		// Validate has parsed every server already.
		addr, _ := netip.ParseAddr(s)
		b.WriteString("nameserver ")
		b.WriteString(addr.String())
		b.WriteByte('\n')
	}
	if len(c.Searches) > 0 {
		b.WriteString("search ")
		b.WriteString(strings.Join(c.Searches, " "))
		b.WriteByte('\n')
	}
	if len(c.Options) > 0 {
		b.WriteString("options ")
		b.WriteString(strings.Join(c.Options, " "))
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// joinedLen is len(strings.Join(list, " ")) without building the string.
func joinedLen(list []string) int {
	if len(list) == 0 {
		return 0
	}
	n := len(list) - 1
	for _, s := range list {
		n += len(s)
	}
	return n
}

// unsafeReason returns why s cannot appear in a resolv.conf or hostname
// entry, or "" when it has none of the bytes that could break out of one:
// whitespace, control characters, non-ASCII bytes, '#' and ';'. Line
// breaks and NUL are looked for first, as they are the worst.
func unsafeReason(s string) string {
	switch {
	case strings.IndexByte(s, '\n') >= 0:
		return "contains a newline"
	case strings.IndexByte(s, '\r') >= 0:
		return "contains a carriage return"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\v' || c == '\f':
			return "contains whitespace"
		case c < 0x20 || c == 0x7f:
			return "contains a control character"
		case c >= 0x80:
			return "contains a non-ASCII byte"
		case c == '#':
			return "contains '#', which starts a comment"
		case c == ';':
			return "contains ';', which starts a comment"
		}
	}
	return ""
}

func checkServer(s string) string {
	if s == "" {
		return "is empty"
	}
	if r := unsafeReason(s); r != "" {
		return r
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return "is not an IP address"
	}
	return ""
}

func checkSearch(s string) string {
	if s == "" {
		return "is empty"
	}
	if r := unsafeReason(s); r != "" {
		return r
	}
	return checkDomain(s)
}

// checkDomain checks a search domain: labels of 1 to 63 letters, digits,
// '-' and '_', not starting or ending with '-', at most 253 characters in
// all, with one optional trailing '.' (not counted).
func checkDomain(s string) string {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return "is not a domain name"
	}
	if len(name) > maxDomainLen {
		return fmt.Sprintf("is %d characters long, at most %d allowed", len(name), maxDomainLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return "has an empty label"
		case len(label) > maxLabelLen:
			return fmt.Sprintf("has a label of %d characters, at most %d allowed", len(label), maxLabelLen)
		case label[0] == '-' || label[len(label)-1] == '-':
			return "has a label that starts or ends with '-'"
		}
		for i := 0; i < len(label); i++ {
			if !isDomainChar(label[i]) {
				return fmt.Sprintf("contains %q; only letters, digits, '-' and '_' are allowed", label[i])
			}
		}
	}
	return ""
}

func isDomainChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// checkOption checks a resolver option: one token of printable ASCII. All
// the bytes that are not printable ASCII, or are '#' or ';', are refused
// by unsafeReason.
func checkOption(s string) string {
	if s == "" {
		return "is empty"
	}
	return unsafeReason(s)
}
