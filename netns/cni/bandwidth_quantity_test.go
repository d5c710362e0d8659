package cni

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/quantity"
)

// The rates are quantity.Parse's values: Kubernetes' grammar, rounded up,
// then kubelet's bounds on the rounded-up value.
func TestBandwidthQuantities(t *testing.T) {
	for v, want := range map[string]uint64{
		"+10M": 10_000_000, "1.5Gi": 1610612736, ".5M": 500_000, "1.G": 1_000_000_000,
		"1000000m": 1000, "1000000000u": 1000, "1.5Ki": 1536, "0.001P": 1e12, "1000.": 1000,
		"999.1": 1000, "0.9995k": 1000, // rounded up to 1000, as kubelet's Value() does
		"1000000000000000": 1e15, "0.0009765625Pi": 1 << 40,
		"1e6": 1e6, "1E6": 1e6, "1e+6": 1e6, "10000e-1": 1000, // Kubernetes' exponents
	} {
		bw, err := BandwidthFromAnnotations(map[string]string{IngressBandwidthAnnotation: v, EgressBandwidthAnnotation: v})
		require.NoError(t, err, v)
		assert.Equal(t, &Bandwidth{IngressRate: want, IngressBurst: math.MaxUint32, EgressRate: want, EgressBurst: math.MaxUint32}, bw, v)
		q, err := quantity.Parse(v)
		require.NoError(t, err, v)
		assert.Equal(t, want, uint64(q), v)
	}

	for v, reason := range map[string]string{
		"-1M":                        "not a quantity: negative",
		"-0":                         "not a quantity: negative",
		"1K":                         "not a quantity: unknown suffix",
		"1 M":                        "not a quantity: contains white space",
		"1..5M":                      "not a quantity: more than one decimal point",
		"1e":                         "not a quantity: bad exponent",
		"1000e-1":                    "unreasonably small",
		"999.0":                      "unreasonably small",
		"1000m":                      "unreasonably small",
		"1000000000000000.1":         "unreasonably large",
		"1Pi":                        "unreasonably large",
		"10E":                        "unreasonably large", // beyond int64
		"8Ei":                        "unreasonably large",
		"99999999999999999999999999": "unreasonably large",
	} {
		_, err := BandwidthFromAnnotations(map[string]string{EgressBandwidthAnnotation: v})
		var be *BandwidthError
		require.ErrorAs(t, err, &be, v)
		assert.Equal(t, EgressBandwidthAnnotation, be.Annotation)
		assert.Equal(t, v, be.Value)
		assert.Contains(t, be.Reason, reason, v)
		assert.ErrorIs(t, err, ErrCNI)
	}

	// The reason does not repeat the value: the error quotes it once.
	long := "1" + strings.Repeat("0", 4096) + "X"
	_, err := BandwidthFromAnnotations(map[string]string{IngressBandwidthAnnotation: long})
	var be *BandwidthError
	require.ErrorAs(t, err, &be)
	assert.NotContains(t, be.Reason, "0000")
}
