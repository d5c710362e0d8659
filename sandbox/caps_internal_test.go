package sandbox

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// On Linux, a Builder that cannot learn the capabilities privileged pods
// get refuses to start: it would give them fewer, silently.
func TestNewBuilderReportsHostCapabilities(t *testing.T) {
	failing := errors.New("no capabilities today")
	saved := hostCapabilities
	hostCapabilities = func() ([]string, error) { return nil, failing }
	t.Cleanup(func() { hostCapabilities = saved })
	_, err := NewBuilder(Options{StateDir: t.TempDir(), RunDir: t.TempDir(), NetnsDir: t.TempDir()})
	require.ErrorIs(t, err, failing)
}
