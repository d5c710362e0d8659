package dns

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateHostname(t *testing.T) {
	tests := []struct {
		h  string
		ok bool
	}{
		{"web-0", true},
		{"a", true},
		{"0", true},
		{"123abc", true},
		{"a-b-c", true},
		{"a--b", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"web-0.web.default.svc.cluster.local", true}, // setHostnameAsFQDN
		{strings.Repeat("a", 63) + ".b", false},       // 65 characters
		{strings.Repeat("a", 62) + ".b", true},        // 64
		{".web", false},
		{"web.", false},
		{"web..example", false},
		{"web.-x", false},
		{"web-.x", false},
		{"", false},
		{"-a", false},
		{"a-", false},
		{"-", false},
		{"Web", false},
		{"web.example", true},
		{"web_0", false},
		{"wéb", false},
		{"web 0", false},
		{"web\n", false},
		{"web\r", false},
		{"web\t0", false},
		{"web\x00", false},
		{"web#0", false},
		{"web;0", false},
	}
	for _, tt := range tests {
		err := ValidateHostname(tt.h)
		if tt.ok {
			assert.NoError(t, err, "%q", tt.h)
			continue
		}
		if assert.Error(t, err, "%q", tt.h) {
			assert.ErrorIs(t, err, ErrInvalid)
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, where{"hostname", -1}, where{ve.Field, ve.Index})
			assert.Equal(t, truncate(tt.h), ve.Value)
		}
	}
}

func TestHostname(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	node := func(name string) func() (string, error) {
		return func() (string, error) { return name, nil }
	}
	nodeErr := errors.New("uname failed")

	tests := []struct {
		name        string
		podHostname string
		id          string
		hostNetwork bool
		node        func() (string, error)
		want        string
		invalid     bool // a *ValidationError for the hostname
		otherErr    bool // some other error
	}{
		{name: "pod hostname", podHostname: "web-0", id: id, want: "web-0"},
		{name: "pod hostname at limit", podHostname: strings.Repeat("x", 63), id: id, want: strings.Repeat("x", 63)},
		{name: "pod hostname over limit", podHostname: strings.Repeat("x", 64), id: id, invalid: true},
		{name: "pod hostname uppercase", podHostname: "Web", id: id, invalid: true},
		{name: "pod hostname injection", podHostname: "web\n10.0.0.1 evil", id: id, invalid: true},
		{name: "from id", id: id, want: "0123456789ab"},
		{name: "from id of exactly 12", id: "abcdefabcdef", want: "abcdefabcdef"},
		{name: "id too short", id: "abcdefabcde", otherErr: true},
		{name: "id empty", id: "", otherErr: true},
		{name: "id not a hostname", id: "ABCDEF0123456789", otherErr: true},
		{name: "id ignored when pod has a name", podHostname: "named", id: "", want: "named"},
		{name: "node ignored without host network", podHostname: "web", id: id, node: node("node1"), want: "web"},

		{name: "host network", id: id, hostNetwork: true, node: node("node1"), want: "node1"},
		{name: "host network, same name", podHostname: "node1", id: id, hostNetwork: true, node: node("node1"), want: "node1"},
		{name: "host network, same name other case", podHostname: "node1", id: id, hostNetwork: true, node: node("Node1"), want: "Node1"},
		{name: "host network, FQDN node", id: id, hostNetwork: true, node: node("node1.example.com"), want: "node1.example.com"},
		{name: "host network, other name", podHostname: "web", id: id, hostNetwork: true, node: node("node1"), invalid: true},
		{name: "host network, node error", id: id, hostNetwork: true, node: func() (string, error) { return "", nodeErr }, otherErr: true},
		{name: "host network, empty node", id: id, hostNetwork: true, node: node(""), otherErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Hostname(tt.podHostname, tt.id, tt.hostNetwork, tt.node)
			switch {
			case tt.invalid:
				require.Error(t, err)
				var ve *ValidationError
				require.ErrorAs(t, err, &ve)
				assert.Equal(t, where{"hostname", -1}, where{ve.Field, ve.Index})
				assert.Empty(t, got)
			case tt.otherErr:
				require.Error(t, err)
				assert.Empty(t, got)
			default:
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
			}
		})
	}

	t.Run("node error is wrapped", func(t *testing.T) {
		_, err := Hostname("", id, true, func() (string, error) { return "", nodeErr })
		assert.ErrorIs(t, err, nodeErr)
	})

	t.Run("host network defaults to os.Hostname", func(t *testing.T) {
		want, err := os.Hostname()
		require.NoError(t, err)
		got, err := Hostname("", id, true, nil)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	})
}

func TestHostnameFile(t *testing.T) {
	assert.Equal(t, "web-0\n", string(HostnameFile("web-0")))
}
