package dns

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalid is matched (with errors.Is) by every *[ValidationError]: a DNS
// configuration or hostname that this package refuses.
var ErrInvalid = errors.New("dns: invalid")

// ErrNoNameservers is matched (with errors.Is) by *[NoNameserversError]: the
// host's resolv.conf has no nameserver a pod in its own network namespace
// can use.
var ErrNoNameservers = errors.New("dns: no usable nameserver")

// maxValueLen is how many bytes of an offending value a ValidationError
// keeps for display.
const maxValueLen = 64

// ValidationError is one problem with a DNS configuration or a hostname.
// [Config.Validate] returns all of them joined with errors.Join; walk the
// result with errors.As, or with Unwrap() []error for the full list.
type ValidationError struct {
	// Field is "servers", "searches", "options" or "hostname".
	Field string
	// Index is the position of the offending entry in Field's list, or -1
	// when the problem is the list as a whole (too many entries, line too
	// long) or the hostname.
	Index int
	// Value is the offending value. A value longer than 64 bytes is
	// truncated for display and ends in "..."; list-wide problems leave it
	// empty.
	Value string
	// Reason says what is wrong, in a few words.
	Reason string
}

func newValidationError(field string, index int, value, reason string) *ValidationError {
	return &ValidationError{Field: field, Index: index, Value: truncate(value), Reason: reason}
}

// truncate shortens s to at most maxValueLen bytes (on a rune boundary when
// s is valid UTF-8) and marks the cut with "...".
func truncate(s string) string {
	if len(s) <= maxValueLen {
		return s
	}
	n := maxValueLen
	for n > maxValueLen-utf8.UTFMax && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// Error formats the problem as `dns: <field>[<index>] "<value>": <reason>`,
// leaving out the index when it is -1 and the value when it is empty.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("dns: ")
	b.WriteString(e.Field)
	if e.Index >= 0 {
		fmt.Fprintf(&b, "[%d]", e.Index)
	}
	if e.Index >= 0 || e.Value != "" {
		fmt.Fprintf(&b, " %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Is reports whether target is [ErrInvalid].
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// NoNameserversError is returned by [FromHost] and [SanitizeHost] when every
// nameserver of the host's resolv.conf is a loopback address, so removing
// them (as a pod with its own network namespace needs) leaves none.
type NoNameserversError struct {
	// Path is the resolv.conf that was read; empty when the data did not
	// come from a file.
	Path string
	// Removed lists the loopback nameserver addresses, as written in the
	// file.
	Removed []string
}

// Error explains why the file is unusable and what to do instead.
func (e *NoNameserversError) Error() string {
	where := "the host's resolv.conf"
	if e.Path != "" {
		where = e.Path
	}
	return fmt.Sprintf("dns: no usable nameserver: every nameserver in %s is a loopback address (%s), "+
		"unreachable from the pod's network namespace; pass a resolv.conf with the real upstream servers "+
		"(with systemd-resolved: /run/systemd/resolve/resolv.conf) or give the pod a dns_config",
		where, strings.Join(e.Removed, ", "))
}

// Is reports whether target is [ErrNoNameservers].
func (e *NoNameserversError) Is(target error) bool { return target == ErrNoNameservers }
