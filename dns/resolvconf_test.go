package dns

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHelpers(t *testing.T) {
	for n := 1; n <= 300; n++ {
		d := domainOfLen(n)
		require.Len(t, d, n)
		if n <= maxDomainLen {
			require.Empty(t, checkDomain(d), "domainOfLen(%d)", n)
		}
	}
	for _, c := range []int{1, 9, 32} {
		s := searchesOfLen(2048, c)
		require.Len(t, s, c)
		require.Len(t, strings.Join(s, " "), 2048)
	}
}

func TestConfigIsZero(t *testing.T) {
	assert.True(t, Config{}.IsZero())
	assert.True(t, Config{Servers: []string{}, Searches: []string{}, Options: []string{}}.IsZero())
	assert.False(t, Config{Servers: []string{"1.1.1.1"}}.IsZero())
	assert.False(t, Config{Searches: []string{"example.com"}}.IsZero())
	assert.False(t, Config{Options: []string{"ndots:5"}}.IsZero())
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []where // nil: valid
	}{
		{name: "zero", cfg: Config{}},
		{name: "typical", cfg: Config{
			Servers:  []string{"10.96.0.10"},
			Searches: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:  []string{"ndots:5"},
		}},

		// servers
		{name: "server ipv4", cfg: Config{Servers: []string{"1.2.3.4"}}},
		{name: "server ipv6", cfg: Config{Servers: []string{"2001:db8::1"}}},
		{name: "server ipv6 zone", cfg: Config{Servers: []string{"fe80::1%eth0"}}},
		{name: "server ipv4-mapped", cfg: Config{Servers: []string{"::ffff:1.2.3.4"}}},
		{name: "servers at limit", cfg: Config{Servers: []string{"1.1.1.1", "8.8.8.8", "9.9.9.9"}}},
		{name: "servers over limit", cfg: Config{Servers: []string{"1.1.1.1", "8.8.8.8", "9.9.9.9", "1.0.0.1"}},
			want: []where{{"servers", -1}}},
		{name: "servers far over limit, one bad", cfg: Config{Servers: append(repeat("1.1.1.1", 9), "x")},
			want: []where{{"servers", -1}, {"servers", 9}}},
		{name: "server empty", cfg: Config{Servers: []string{""}}, want: []where{{"servers", 0}}},
		{name: "server truncated ipv4", cfg: Config{Servers: []string{"1.2.3"}}, want: []where{{"servers", 0}}},
		{name: "server leading zero", cfg: Config{Servers: []string{"01.2.3.4"}}, want: []where{{"servers", 0}}},
		{name: "server hostname", cfg: Config{Servers: []string{"8.8.8.8", "dns.google"}}, want: []where{{"servers", 1}}},
		{name: "server with port", cfg: Config{Servers: []string{"1.2.3.4:53"}}, want: []where{{"servers", 0}}},
		{name: "server bracketed", cfg: Config{Servers: []string{"[::1]"}}, want: []where{{"servers", 0}}},
		{name: "server empty zone", cfg: Config{Servers: []string{"fe80::1%"}}, want: []where{{"servers", 0}}},
		{name: "server ipv4 zone", cfg: Config{Servers: []string{"1.2.3.4%eth0"}}, want: []where{{"servers", 0}}},
		{name: "server zone with hash", cfg: Config{Servers: []string{"fe80::1%eth0#x"}}, want: []where{{"servers", 0}}},
		{name: "server zone with space", cfg: Config{Servers: []string{"fe80::1%eth 0"}}, want: []where{{"servers", 0}}},
		{name: "server zone non-ascii", cfg: Config{Servers: []string{"fe80::1%\u0085"}}, want: []where{{"servers", 0}}},

		// searches
		{name: "search single label", cfg: Config{Searches: []string{"local"}}},
		{name: "search trailing dot", cfg: Config{Searches: []string{"example.com."}}},
		{name: "search underscore", cfg: Config{Searches: []string{"_srv.my_zone.example"}}},
		{name: "search uppercase", cfg: Config{Searches: []string{"EXAMPLE.Com"}}},
		{name: "search digits", cfg: Config{Searches: []string{"1.2.3", "xn--bcher-kva.example"}}},
		{name: "search label at limit", cfg: Config{Searches: []string{labelOfLen(63) + ".com"}}},
		{name: "search label over limit", cfg: Config{Searches: []string{labelOfLen(64) + ".com"}},
			want: []where{{"searches", 0}}},
		{name: "search domain at limit", cfg: Config{Searches: []string{domainOfLen(253)}}},
		{name: "search domain at limit with dot", cfg: Config{Searches: []string{domainOfLen(253) + "."}}},
		{name: "search domain over limit", cfg: Config{Searches: []string{domainOfLen(254)}},
			want: []where{{"searches", 0}}},
		{name: "searches count at limit", cfg: Config{Searches: repeat("example.com", 32)}},
		{name: "searches count over limit", cfg: Config{Searches: repeat("example.com", 33)},
			want: []where{{"searches", -1}}},
		{name: "search line at limit", cfg: Config{Searches: searchesOfLen(2048, 9)}},
		{name: "search line at limit, 32 domains", cfg: Config{Searches: searchesOfLen(2048, 32)}},
		{name: "search line over limit", cfg: Config{Searches: searchesOfLen(2049, 9)},
			want: []where{{"searches", -1}}},
		{name: "search count and line over limit", cfg: Config{Searches: searchesOfLen(33*100, 33)},
			want: []where{{"searches", -1}, {"searches", -1}}},
		{name: "search empty", cfg: Config{Searches: []string{""}}, want: []where{{"searches", 0}}},
		{name: "search root only", cfg: Config{Searches: []string{"."}}, want: []where{{"searches", 0}}},
		{name: "search leading dot", cfg: Config{Searches: []string{".example.com"}}, want: []where{{"searches", 0}}},
		{name: "search empty label", cfg: Config{Searches: []string{"a..com"}}, want: []where{{"searches", 0}}},
		{name: "search two trailing dots", cfg: Config{Searches: []string{"a.com.."}}, want: []where{{"searches", 0}}},
		{name: "search leading hyphen", cfg: Config{Searches: []string{"-a.com"}}, want: []where{{"searches", 0}}},
		{name: "search trailing hyphen", cfg: Config{Searches: []string{"ok.com", "a-.com"}}, want: []where{{"searches", 1}}},
		{name: "search bad char", cfg: Config{Searches: []string{"a!b.com"}}, want: []where{{"searches", 0}}},
		{name: "search slash", cfg: Config{Searches: []string{"a/b.com"}}, want: []where{{"searches", 0}}},
		{name: "search non-ascii", cfg: Config{Searches: []string{"exämple.com"}}, want: []where{{"searches", 0}}},

		// options
		{name: "options common", cfg: Config{Options: []string{"ndots:5", "edns0", "timeout:2", "attempts:3", "single-request-reopen", "use-vc", "trust-ad"}}},
		{name: "options line at limit", cfg: Config{Options: []string{strings.Repeat("o", 1000), strings.Repeat("p", 1047)}}},
		{name: "option alone at limit", cfg: Config{Options: []string{strings.Repeat("o", 2048)}}},
		{name: "options line over limit", cfg: Config{Options: []string{strings.Repeat("o", 1000), strings.Repeat("p", 1048)}},
			want: []where{{"options", -1}}},
		{name: "many short options", cfg: Config{Options: repeat("edns0", 100)}},
		{name: "option empty", cfg: Config{Options: []string{"edns0", ""}}, want: []where{{"options", 1}}},
		{name: "option with space", cfg: Config{Options: []string{"ndots: 5"}}, want: []where{{"options", 0}}},
		{name: "option DEL", cfg: Config{Options: []string{"a\x7f"}}, want: []where{{"options", 0}}},
		{name: "option control", cfg: Config{Options: []string{"a\x1b"}}, want: []where{{"options", 0}}},
		{name: "option non-ascii", cfg: Config{Options: []string{"ndots:é"}}, want: []where{{"options", 0}}},
		{name: "option vertical tab", cfg: Config{Options: []string{"a\vb"}}, want: []where{{"options", 0}}},
		{name: "option form feed", cfg: Config{Options: []string{"a\fb"}}, want: []where{{"options", 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				_, err = Render(tt.cfg)
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
			assert.ElementsMatch(t, tt.want, wheres(t, err))
			out, rerr := Render(tt.cfg)
			assert.Nil(t, out)
			assert.Equal(t, err.Error(), rerr.Error(), "Render returns Validate's error")
		})
	}
}

// TestValidateInjection tries to smuggle a line, a comment or a field
// separator into each field; each attempt must be refused and pinned to the
// right field and index.
func TestValidateInjection(t *testing.T) {
	injections := map[string]string{
		"newline":         "\nnameserver 6.6.6.6",
		"carriage return": "\rnameserver 6.6.6.6",
		"crlf":            "\r\noptions debug",
		"tab":             "\t6.6.6.6",
		"space":           " 6.6.6.6",
		"hash":            "#comment",
		"semicolon":       ";comment",
		"nul":             "\x00nameserver 6.6.6.6",
		"nul alone":       "\x00",
		"newline alone":   "\n",
		"leading newline": "\n",
	}
	fields := []struct {
		name  string
		valid string
		make  func(vals []string) Config
	}{
		{"servers", "1.2.3.4", func(v []string) Config { return Config{Servers: v} }},
		{"searches", "example.com", func(v []string) Config { return Config{Searches: v} }},
		{"options", "edns0", func(v []string) Config { return Config{Options: v} }},
	}
	for _, f := range fields {
		for name, inj := range injections {
			for _, bad := range []string{f.valid + inj, inj + f.valid} {
				t.Run(f.name+"/"+name, func(t *testing.T) {
					cfg := f.make([]string{f.valid, bad})
					err := cfg.Validate()
					require.Error(t, err)
					require.ErrorIs(t, err, ErrInvalid)
					errs := validationErrors(t, err)
					require.Len(t, errs, 1)
					assert.Equal(t, f.name, errs[0].Field)
					assert.Equal(t, 1, errs[0].Index)
					assert.Equal(t, bad, errs[0].Value)

					out, err := Render(cfg)
					assert.Error(t, err)
					assert.Nil(t, out)
				})
			}
		}
	}
}

func TestValidateReportsEverything(t *testing.T) {
	cfg := Config{
		Servers:  []string{"1.1.1.1", "bad", "8.8.8.8", "9.9.9.9\nnameserver 6.6.6.6"},
		Searches: append(repeat("ok.example", 32), "bad..example", "ok.example"),
		Options:  []string{"ndots:5", "x;y", "", strings.Repeat("z", 2048)},
	}
	err := cfg.Validate()
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.ElementsMatch(t, []where{
		{"servers", -1}, {"servers", 1}, {"servers", 3},
		{"searches", -1}, {"searches", 32},
		{"options", -1}, {"options", 1}, {"options", 2},
	}, wheres(t, err))

	// errors.As finds the first one.
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "servers", ve.Field)
	assert.Equal(t, -1, ve.Index)
}

func TestRender(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "zero", cfg: Config{}, want: ""},
		{name: "empty lists", cfg: Config{Servers: []string{}, Searches: []string{}, Options: []string{}}, want: ""},
		{
			name: "full",
			cfg: Config{
				Servers:  []string{"10.96.0.10", "2001:db8::53"},
				Searches: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
				Options:  []string{"ndots:5", "edns0"},
			},
			want: "nameserver 10.96.0.10\n" +
				"nameserver 2001:db8::53\n" +
				"search default.svc.cluster.local svc.cluster.local cluster.local\n" +
				"options ndots:5 edns0\n",
		},
		{name: "servers only", cfg: Config{Servers: []string{"1.1.1.1"}}, want: "nameserver 1.1.1.1\n"},
		{name: "searches only", cfg: Config{Searches: []string{"example.com."}}, want: "search example.com.\n"},
		{name: "options only", cfg: Config{Options: []string{"timeout:2"}}, want: "options timeout:2\n"},
		{
			name: "servers canonical",
			cfg:  Config{Servers: []string{"2001:DB8:0:0::53", "::ffff:1.2.3.4", "fe80::1%eth0"}},
			want: "nameserver 2001:db8::53\nnameserver ::ffff:1.2.3.4\nnameserver fe80::1%eth0\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.cfg)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestValidationError(t *testing.T) {
	tests := []struct {
		err  *ValidationError
		want string
	}{
		{
			newValidationError("servers", 2, "1.2.3.4\nnameserver 6.6.6.6", "contains a newline"),
			`dns: servers[2] "1.2.3.4\nnameserver 6.6.6.6": contains a newline`,
		},
		{
			newValidationError("searches", -1, "", "33 search domains, at most 32 allowed"),
			`dns: searches: 33 search domains, at most 32 allowed`,
		},
		{
			newValidationError("options", 0, "", "is empty"),
			`dns: options[0] "": is empty`,
		},
		{
			newValidationError("hostname", -1, "Foo", "bad"),
			`dns: hostname "Foo": bad`,
		},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.err.Error())
		assert.ErrorIs(t, tt.err, ErrInvalid)
		assert.NotErrorIs(t, tt.err, ErrNoNameservers)
	}

	long := newValidationError("searches", 0, strings.Repeat("a", 300), "too long")
	assert.Equal(t, strings.Repeat("a", 64)+"...", long.Value)

	// Truncation does not cut a multi-byte character in half.
	multi := newValidationError("searches", 0, strings.Repeat("a", 63)+strings.Repeat("é", 10), "x")
	assert.Equal(t, strings.Repeat("a", 63)+"...", multi.Value)

	wrapped := errors.Join(errors.New("other"), long)
	var ve *ValidationError
	require.ErrorAs(t, wrapped, &ve)
	assert.Same(t, long, ve)
}
