package cni

import (
	"math"
	"math/big"
	"strings"
)

// The pod annotations that limit its bandwidth, in bits per second, as
// Kubernetes quantities ("10M", "1Gi").
const (
	IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	EgressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// Bandwidth is CNI's bandwidth capability: rates in bits per second, bursts
// in bits.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// Kubernetes' sanity bounds of a bandwidth annotation.
const (
	minBandwidth = 1e3  // 1k
	maxBandwidth = 1e15 // 1P
)

// BandwidthFromAnnotations reads the pod's bandwidth annotations; nil when
// it has none. Values are Kubernetes quantities between 1k and 1P bits per
// second, as kubelet checks them; the burst is unbounded (MaxUint32 bits),
// as containerd passes it.
func BandwidthFromAnnotations(annotations map[string]string) (*Bandwidth, error) {
	var bw Bandwidth
	set := false
	for _, a := range []struct {
		key   string
		rate  *uint64
		burst *uint64
	}{
		{IngressBandwidthAnnotation, &bw.IngressRate, &bw.IngressBurst},
		{EgressBandwidthAnnotation, &bw.EgressRate, &bw.EgressBurst},
	} {
		v, ok := annotations[a.key]
		if !ok {
			continue
		}
		rate, reason := parseRate(v)
		if reason != "" {
			return nil, &BandwidthError{Annotation: a.key, Value: v, Reason: reason}
		}
		*a.rate, *a.burst, set = rate, math.MaxUint32, true
	}
	if !set {
		return nil, nil
	}
	return &bw, nil
}

// parseRate parses a Kubernetes quantity (an integer or decimal number
// and an optional suffix k, M, G, T, P, E or Ki, Mi, Gi, Ti, Pi, Ei) into
// bits per second, or says what is wrong.
func parseRate(s string) (uint64, string) {
	num, mult := s, big.NewRat(1, 1)
	for _, u := range []struct {
		suffix string
		mult   int64
		pow    int64
	}{
		{"Ki", 1024, 1}, {"Mi", 1024, 2}, {"Gi", 1024, 3}, {"Ti", 1024, 4}, {"Pi", 1024, 5}, {"Ei", 1024, 6},
		{"k", 1000, 1}, {"M", 1000, 2}, {"G", 1000, 3}, {"T", 1000, 4}, {"P", 1000, 5}, {"E", 1000, 6},
	} {
		if strings.HasSuffix(s, u.suffix) {
			num = strings.TrimSuffix(s, u.suffix)
			m := new(big.Int).Exp(big.NewInt(u.mult), big.NewInt(u.pow), nil)
			mult.SetInt(m)
			break
		}
	}
	if num == "" || strings.ContainsAny(num, "eE+-/ ") || strings.Count(num, ".") > 1 {
		return 0, "not a quantity (a number with an optional suffix such as k, M, G, Ki, Mi, Gi)"
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, "not a quantity (a number with an optional suffix such as k, M, G, Ki, Mi, Gi)"
	}
	r.Mul(r, mult)
	switch {
	case r.Cmp(big.NewRat(minBandwidth, 1)) < 0:
		return 0, "unreasonably small (under 1k bits per second)"
	case r.Cmp(new(big.Rat).SetInt64(maxBandwidth)) > 0:
		return 0, "unreasonably large (over 1P bits per second)"
	}
	f, _ := r.Float64()
	return uint64(math.Ceil(f)), ""
}
