package dns

import (
	"bytes"
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// splitList turns a fuzzed string into a list: "" is no list, otherwise the
// entries are separated by ','.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func FuzzRender(f *testing.F) {
	f.Add("10.96.0.10", "default.svc.cluster.local,svc.cluster.local,cluster.local", "ndots:5")
	f.Add("1.1.1.1,2001:db8::53,fe80::1%eth0", "example.com.", "edns0,timeout:2,single-request-reopen")
	f.Add("1.2.3.4\nnameserver 6.6.6.6", "a b", "x#y")
	f.Add("::ffff:1.2.3.4,1.1.1.1,8.8.8.8,9.9.9.9", "", "")
	f.Add("", "_srv.example\r\noptions debug", "a;b,\x00")
	f.Add("fe80::1%a b", "-x.com,x-.com,a..b", "ndots:é")
	f.Add("", "", "")
	f.Add("1.1.1.1", strings.Repeat("a.", 130), strings.Repeat("o", 2049))

	f.Fuzz(func(t *testing.T, servers, searches, options string) {
		cfg := Config{Servers: splitList(servers), Searches: splitList(searches), Options: splitList(options)}
		out, err := Render(cfg)
		if err != nil {
			if out != nil {
				t.Fatalf("Render returned output with an error: %q", out)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not match ErrInvalid: %v", err)
			}
			for _, ve := range validationErrors(t, err) {
				switch ve.Field {
				case fieldServers, fieldSearches, fieldOptions:
				default:
					t.Fatalf("unexpected field %q", ve.Field)
				}
				if ve.Index < -1 || ve.Index >= max(len(cfg.Servers), len(cfg.Searches), len(cfg.Options)) {
					t.Fatalf("index %d out of range: %v", ve.Index, ve)
				}
				if len(ve.Value) > maxValueLen+len("...") {
					t.Fatalf("value not truncated: %d bytes", len(ve.Value))
				}
			}
			return
		}

		again, err := Render(cfg)
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("Render is not deterministic: %q, then %q, %v", out, again, err)
		}

		wantLines := len(cfg.Servers)
		if len(cfg.Searches) > 0 {
			wantLines++
		}
		if len(cfg.Options) > 0 {
			wantLines++
		}
		if got := bytes.Count(out, []byte("\n")); got != wantLines {
			t.Fatalf("%d lines, want %d: %q", got, wantLines, out)
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			t.Fatalf("output does not end in a newline: %q", out)
		}
		for _, c := range out {
			if c != '\n' && (c < 0x20 || c > 0x7e || c == '#' || c == ';') {
				t.Fatalf("output has byte %q: %q", c, out)
			}
		}

		// Read it back the way a resolver would: the same entries, no more.
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(out) == 0 {
			lines = nil
		}
		for i, s := range cfg.Servers {
			fields := strings.Fields(lines[i])
			addr, perr := netip.ParseAddr(s)
			if perr != nil || !slices.Equal(fields, []string{"nameserver", addr.String()}) {
				t.Fatalf("line %q for server %q", lines[i], s)
			}
		}
		rest := lines[len(cfg.Servers):]
		if len(cfg.Searches) > 0 {
			if fields := strings.Fields(rest[0]); fields[0] != "search" || !slices.Equal(fields[1:], cfg.Searches) {
				t.Fatalf("search line %q for %q", rest[0], cfg.Searches)
			}
			rest = rest[1:]
		}
		if len(cfg.Options) > 0 {
			if fields := strings.Fields(rest[0]); fields[0] != "options" || !slices.Equal(fields[1:], cfg.Options) {
				t.Fatalf("options line %q for %q", rest[0], cfg.Options)
			}
		}
	})
}

var rfc1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func FuzzValidateHostname(f *testing.F) {
	for _, s := range []string{"web-0", "a", "-a", "a-", "A", "a.b", "a..b", ".a", "a.", "a.-b", "web-0.web.default.svc.cluster.local", "a_b", "a\nb", "é", strings.Repeat("a", 63), strings.Repeat("a", 64), "", "0123456789ab"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		err := ValidateHostname(h)
		match := len(h) <= MaxHostnameLen
		for label := range strings.SplitSeq(h, ".") {
			match = match && len(label) <= 63 && rfc1123Label.MatchString(label)
		}
		if err == nil && !match {
			t.Fatalf("accepted %q, which is not an RFC 1123 subdomain of at most %d characters", h, MaxHostnameLen)
		}
		if err != nil {
			if match {
				t.Fatalf("refused %q, a valid label: %v", h, err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || ve.Field != fieldHostname || ve.Index != -1 {
				t.Fatalf("unexpected error %#v", err)
			}
			return
		}
		ips := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}
		if got, want := bytes.Count(Hosts(h, ips), []byte("\n")), strings.Count(hostsHeader, "\n")+len(ips); got != want {
			t.Fatalf("Hosts(%q) has %d lines, want %d", h, got, want)
		}
	})
}

// splitLines splits data into lines, each with its "\n" if it has one.
func splitLines(data []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.SplitAfter(data, []byte("\n")) {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

func FuzzSanitizeHost(f *testing.F) {
	f.Add([]byte(systemdStub), false)
	f.Add([]byte(systemdStub), true)
	f.Add([]byte("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\n"), false)
	f.Add([]byte("  nameserver\t127.1#x\r\nnameserver ::1%lo\nnameserver 0x7f.1"), false)
	f.Add([]byte("nameserver ::ffff:127.0.0.1\nnameserver 8.8.8.8"), false)
	f.Add([]byte("search a\noptions ndots:1\n"), false)
	f.Add([]byte(""), false)
	f.Add([]byte("nameserver"), false)
	f.Add([]byte("nameserver \n\n\nnameserver 017700000001\n"), false)

	f.Fuzz(func(t *testing.T, data []byte, hostNetwork bool) {
		orig := bytes.Clone(data)
		out, removed, err := SanitizeHost(data, hostNetwork)
		if !bytes.Equal(data, orig) {
			t.Fatal("SanitizeHost modified its input")
		}
		if hostNetwork {
			if err != nil || removed != nil || !bytes.Equal(out, data) {
				t.Fatalf("host network changed the file: %q, %q, %v", out, removed, err)
			}
			return
		}
		in := splitLines(data)
		if err != nil {
			var nerr *NoNameserversError
			if !errors.As(err, &nerr) || !errors.Is(err, ErrNoNameservers) || out != nil {
				t.Fatalf("unexpected error %#v, output %q", err, out)
			}
			if len(removed) == 0 || !slices.Equal(nerr.Removed, removed) {
				t.Fatalf("removed %q, error says %q", removed, nerr.Removed)
			}
			return
		}

		// The output is the input with some lines left out: never a line
		// added, never one changed.
		kept := splitLines(out)
		if len(kept) > len(in) {
			t.Fatalf("%d lines in, %d out", len(in), len(kept))
		}
		j := 0
		for _, l := range in {
			if j < len(kept) && bytes.Equal(l, kept[j]) {
				j++
			}
		}
		if j != len(kept) {
			t.Fatalf("output is not a subsequence of the input lines:\n%q\n%q", data, out)
		}
		if len(in)-len(kept) != len(removed) {
			t.Fatalf("%d lines dropped, %d reported", len(in)-len(kept), len(removed))
		}

		// Nothing left points at loopback, so a second pass removes nothing.
		out2, removed2, err := SanitizeHost(out, false)
		if err != nil || len(removed2) != 0 || !bytes.Equal(out2, out) {
			t.Fatalf("second pass changed the output: %q, %q, %v", out2, removed2, err)
		}
	})
}
