package dns_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/dns"
)

func TestNodeResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	require.NoError(t, os.WriteFile(p, []byte("nameserver 127.0.0.53\nnameserver 192.0.2.1\n"), 0o644))
	c := dns.NewNodeResolvConf(p)
	pod, err := c.ForPod(false)
	require.NoError(t, err)
	assert.Equal(t, "nameserver 192.0.2.1\n", string(pod), "no loopback stub for a pod")
	host, err := c.ForPod(true)
	require.NoError(t, err)
	assert.Contains(t, string(host), "127.0.0.53")

	// Replaced by a rename, then rewritten in place: both seen.
	tmp := p + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte("nameserver 192.0.2.2\n"), 0o644))
	require.NoError(t, os.Rename(tmp, p))
	pod, err = c.ForPod(false)
	require.NoError(t, err)
	assert.Equal(t, "nameserver 192.0.2.2\n", string(pod))
	require.NoError(t, os.WriteFile(p, []byte("nameserver 192.0.2.33\n"), 0o644))
	pod, err = c.ForPod(false)
	require.NoError(t, err)
	assert.Equal(t, "nameserver 192.0.2.33\n", string(pod))

	require.NoError(t, os.Remove(p))
	_, err = c.ForPod(false)
	require.ErrorIs(t, err, os.ErrNotExist)
}
