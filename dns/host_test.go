package dns

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// systemdStub is what /etc/resolv.conf looks like with systemd-resolved.
const systemdStub = `# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).
# Do not edit.

nameserver 127.0.0.53
options edns0 trust-ad
search lan
`

func TestSanitizeHost(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		hostNetwork bool
		want        string
		removed     []string
		noServers   bool // want a *NoNameserversError
	}{
		{
			name: "non-loopback kept",
			in:   "nameserver 10.0.0.2\nnameserver 2001:db8::53\nsearch example.com\noptions ndots:2\n",
			want: "nameserver 10.0.0.2\nnameserver 2001:db8::53\nsearch example.com\noptions ndots:2\n",
		},
		{
			name:    "stub removed, others kept",
			in:      "# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n; other comment\nsearch lan\noptions edns0 trust-ad\n",
			want:    "# comment\nnameserver 10.0.0.2\n; other comment\nsearch lan\noptions edns0 trust-ad\n",
			removed: []string{"127.0.0.53"},
		},
		{
			name:    "127.0.0.1 and ::1 removed",
			in:      "nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.168.1.1\n",
			want:    "nameserver 192.168.1.1\n",
			removed: []string{"127.0.0.1", "::1"},
		},
		{
			name:    "all of 127/8 is loopback",
			in:      "nameserver 127.255.255.254\nnameserver 1.1.1.1\n",
			want:    "nameserver 1.1.1.1\n",
			removed: []string{"127.255.255.254"},
		},
		{
			name: "128.0.0.1 and 126.255.255.255 are not loopback",
			in:   "nameserver 128.0.0.1\nnameserver 126.255.255.255\n",
			want: "nameserver 128.0.0.1\nnameserver 126.255.255.255\n",
		},
		{
			name:    "odd spellings of loopback",
			in:      "nameserver ::ffff:127.0.0.1\nnameserver ::1%lo\nnameserver 0:0:0:0:0:0:0:1\nnameserver 127.1\nnameserver 0x7f.0.0.1\nnameserver 017700000001\nnameserver 2130706433\nnameserver ::1%\nnameserver 8.8.8.8\n",
			want:    "nameserver 8.8.8.8\n",
			removed: []string{"::ffff:127.0.0.1", "::1%lo", "0:0:0:0:0:0:0:1", "127.1", "0x7f.0.0.1", "017700000001", "2130706433", "::1%"},
		},
		{
			name:    "blanks, comments and CRLF around the address",
			in:      "  nameserver\t127.0.0.53 # stub\n\tnameserver 127.0.0.1;x\nnameserver ::1\r\nnameserver 10.1.1.1\r\n",
			want:    "nameserver 10.1.1.1\r\n",
			removed: []string{"127.0.0.53", "127.0.0.1", "::1"},
		},
		{
			name:    "last line without newline",
			in:      "nameserver 10.0.0.1\nnameserver 127.0.0.53",
			want:    "nameserver 10.0.0.1\n",
			removed: []string{"127.0.0.53"},
		},
		{
			name:    "last kept line without newline",
			in:      "nameserver 127.0.0.53\nnameserver 10.0.0.1",
			want:    "nameserver 10.0.0.1",
			removed: []string{"127.0.0.53"},
		},
		{
			name: "not nameserver lines",
			in:   "# nameserver 127.0.0.1\n;nameserver 127.0.0.1\nnameserver127.0.0.1\nnameservers 127.0.0.1\nNAMESERVER 127.0.0.1\nsearch 127.0.0.1\n",
			want: "# nameserver 127.0.0.1\n;nameserver 127.0.0.1\nnameserver127.0.0.1\nnameservers 127.0.0.1\nNAMESERVER 127.0.0.1\nsearch 127.0.0.1\n",
		},
		{
			name:      "systemd stub only",
			in:        systemdStub,
			removed:   []string{"127.0.0.53"},
			noServers: true,
		},
		{
			name:      "only loopback, several",
			in:        "nameserver 127.0.0.1\nnameserver ::1\n",
			removed:   []string{"127.0.0.1", "::1"},
			noServers: true,
		},
		{
			name:      "only loopback plus an unparsable nameserver",
			in:        "nameserver 127.0.0.53\nnameserver not-an-ip\nnameserver\n",
			removed:   []string{"127.0.0.53"},
			noServers: true,
		},
		{
			name:        "host network keeps everything",
			in:          systemdStub,
			hostNetwork: true,
			want:        systemdStub,
		},
		{
			name:        "host network keeps ::1",
			in:          "nameserver ::1\nnameserver 127.0.0.1\n",
			hostNetwork: true,
			want:        "nameserver ::1\nnameserver 127.0.0.1\n",
		},
		{
			name: "no nameserver at all",
			in:   "search example.com\noptions ndots:1\n",
			want: "search example.com\noptions ndots:1\n",
		},
		{name: "empty", in: "", want: ""},
		{
			name: "unparsable nameserver kept",
			in:   "nameserver dns.example\nnameserver 300.1.1.1\n",
			want: "nameserver dns.example\nnameserver 300.1.1.1\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, removed, err := SanitizeHost([]byte(tt.in), tt.hostNetwork)
			assert.Equal(t, tt.removed, removed)
			if tt.noServers {
				require.ErrorIs(t, err, ErrNoNameservers)
				var nerr *NoNameserversError
				require.ErrorAs(t, err, &nerr)
				assert.Equal(t, tt.removed, nerr.Removed)
				assert.Empty(t, nerr.Path)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestFromHost(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}

	t.Run("sanitised", func(t *testing.T) {
		p := write("mixed", "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\n")
		got, err := FromHost(p, false)
		require.NoError(t, err)
		assert.Equal(t, "nameserver 10.0.0.2\nsearch lan\n", string(got))
	})

	t.Run("host network", func(t *testing.T) {
		p := write("stub", systemdStub)
		got, err := FromHost(p, true)
		require.NoError(t, err)
		assert.Equal(t, systemdStub, string(got))
	})

	t.Run("only loopback", func(t *testing.T) {
		p := write("stub2", systemdStub)
		got, err := FromHost(p, false)
		assert.Nil(t, got)
		require.ErrorIs(t, err, ErrNoNameservers)
		assert.NotErrorIs(t, err, ErrInvalid)
		var nerr *NoNameserversError
		require.ErrorAs(t, err, &nerr)
		assert.Equal(t, p, nerr.Path)
		assert.Equal(t, []string{"127.0.0.53"}, nerr.Removed)
		assert.Contains(t, err.Error(), p, "the message names the file")
	})

	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(dir, "does-not-exist")
		_, err := FromHost(p, false)
		require.Error(t, err)
		assert.ErrorIs(t, err, fs.ErrNotExist)
		var perr *fs.PathError
		require.ErrorAs(t, err, &perr)
		assert.Equal(t, p, perr.Path)
	})

	t.Run("directory", func(t *testing.T) {
		_, err := FromHost(dir, false)
		require.Error(t, err)
		assert.False(t, errors.Is(err, ErrNoNameservers))
	})

	t.Run("default path", func(t *testing.T) {
		// The machine's own /etc/resolv.conf may be missing or stub-only;
		// FromHost("") must behave exactly like FromHost(DefaultHostResolvConf).
		got1, err1 := FromHost("", false)
		got2, err2 := FromHost(DefaultHostResolvConf, false)
		assert.Equal(t, got2, got1)
		assert.Equal(t, err2 == nil, err1 == nil)
		if err1 != nil {
			assert.Equal(t, err2.Error(), err1.Error())
		}
	})
}

func TestNoNameserversError(t *testing.T) {
	err := &NoNameserversError{Path: "/etc/resolv.conf", Removed: []string{"127.0.0.53", "::1"}}
	assert.ErrorIs(t, err, ErrNoNameservers)
	// The message is for people; check it carries what they need.
	msg := err.Error()
	for _, s := range []string{"/etc/resolv.conf", "127.0.0.53", "::1", "/run/systemd/resolve/resolv.conf", "dns_config"} {
		assert.Contains(t, msg, s)
	}
	assert.Contains(t, (&NoNameserversError{Removed: []string{"127.0.0.1"}}).Error(), "host's resolv.conf")
}

func TestInetAton(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means refused
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F.1", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"1.16777215", "1.255.255.255"},
		{"1.2.65535", "1.2.255.255"},
		{"", ""},
		{".", ""},
		{"1.", ""},
		{".1", ""},
		{"1..2", ""},
		{"1.2.3.4.5", ""},
		{"256.0.0.1", ""},
		{"1.2.3.256", ""},
		{"1.16777216", ""},
		{"1.2.65536", ""},
		{"4294967296", ""},
		{"99999999999999999999999", ""},
		{"08", ""},
		{"0x1g", ""},
		{"1.2.3.4x", ""},
		{"a", ""},
		{"-1", ""},
	}
	for _, tt := range tests {
		got, ok := inetAton([]byte(tt.in))
		if tt.want == "" {
			assert.False(t, ok, "%q", tt.in)
			continue
		}
		if assert.True(t, ok, "%q", tt.in) {
			assert.Equal(t, netip.MustParseAddr(tt.want), got, "%q", tt.in)
		}
	}
}
