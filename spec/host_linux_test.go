package spec

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRestrictOOMScoreAdj(t *testing.T) {
	assert.Equal(t, 0, restrictOOMScoreAdj(-998, 0))
	assert.Equal(t, 500, restrictOOMScoreAdj(-998, 500))
	assert.Equal(t, -998, restrictOOMScoreAdj(-998, -999))
	assert.Equal(t, 100, restrictOOMScoreAdj(100, 0))
}

func TestEffectiveOOMScoreAdj(t *testing.T) {
	got, err := EffectiveOOMScoreAdj(-998, OOMExact)
	require.NoError(t, err)
	assert.Equal(t, -998, got)

	own, canLower, err := ownOOMScoreAdj()
	require.NoError(t, err)
	got, err = EffectiveOOMScoreAdj(-998, OOMRestrict)
	require.NoError(t, err)
	assert.Equal(t, max(-998, own), got)

	got, err = EffectiveOOMScoreAdj(-998, OOMAuto)
	require.NoError(t, err)
	if canLower {
		assert.Equal(t, -998, got)
	} else {
		assert.Equal(t, max(-998, own), got, "clamped without CAP_SYS_RESOURCE")
	}

	_, err = EffectiveOOMScoreAdj(0, OOMPolicy(42))
	require.ErrorIs(t, err, ErrInvalid)
}

func TestParseCapEff(t *testing.T) {
	caps, err := parseCapEff("Name:\tx\nCapEff:\t0000000001000000\n")
	require.NoError(t, err)
	assert.Equal(t, uint64(1<<capSysResource), caps)
	_, err = parseCapEff("Name:\tx\n")
	require.Error(t, err)
	_, err = parseCapEff("CapEff:\tnothex\n")
	require.Error(t, err)
}

func TestHostCapabilities(t *testing.T) {
	caps, err := HostCapabilities()
	require.NoError(t, err)
	assert.Contains(t, caps, "CAP_SYS_ADMIN")
	assert.Contains(t, caps, "CAP_CHOWN")
	for _, c := range caps {
		assert.True(t, strings.HasPrefix(c, "CAP_") && strings.ToUpper(c) == c, c)
	}
}
