package cni

import (
	"errors"
	"math"

	"github.com/podsmith/podsmith/internal/quantity"
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
// it has none. Values are Kubernetes quantities ("10M", "1.5Gi", "1000k"),
// rounded up to whole bits per second, between 1k and 1P, as kubelet checks
// them. The burst is unbounded (MaxUint32 bits), as containerd passes it.
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

// parseRate parses a rate annotation into bits per second, or says what is
// wrong. The grammar and the rounding up are quantity.Parse's, Kubernetes';
// the bounds are kubelet's, which it checks on the rounded-up value too.
func parseRate(s string) (uint64, string) {
	v, err := quantity.Parse(s)
	var qe *quantity.Error
	switch {
	case errors.Is(err, quantity.ErrRange):
		return 0, reasonTooLarge
	case errors.As(err, &qe):
		return 0, "not a quantity: " + qe.Reason
	case err != nil:
		return 0, "not a quantity"
	case v < minBandwidth:
		return 0, "unreasonably small (under 1k bits per second)"
	case v > maxBandwidth:
		return 0, reasonTooLarge
	}
	return uint64(v), ""
}

const reasonTooLarge = "unreasonably large (over 1P bits per second)"
