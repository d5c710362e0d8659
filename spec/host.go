package spec

import (
	"fmt"
	"strings"

	"github.com/moby/sys/capability"
)

// OOMPolicy says how EffectiveOOMScoreAdj treats a score below the
// process's own.
type OOMPolicy int

const (
	// OOMAuto restricts the score when this process lacks
	// CAP_SYS_RESOURCE, as containerd's restrict_oom_score_adj does
	// (without the capability the runtime cannot lower a score below its
	// own and fails: "failed to update /proc/self/oom_score_adj:
	// Permission denied"). The default.
	OOMAuto OOMPolicy = iota
	// OOMRestrict always raises a score below the process's own to its
	// own.
	OOMRestrict
	// OOMExact never changes the score.
	OOMExact
)

// EffectiveOOMScoreAdj returns the OOM score adjustment to write into a
// spec for the wanted one, under policy (see OOMPolicy). It reads this
// process's own score and capabilities from /proc.
func EffectiveOOMScoreAdj(want int, policy OOMPolicy) (int, error) {
	switch policy {
	case OOMExact:
		return want, nil
	case OOMRestrict, OOMAuto:
	default:
		return 0, fmt.Errorf("spec: unknown OOM policy %d: %w", policy, ErrInvalid)
	}
	own, canLower, err := ownOOMScoreAdj()
	if err != nil {
		return 0, err
	}
	if policy == OOMAuto && canLower {
		return want, nil
	}
	return restrictOOMScoreAdj(want, own), nil
}

func restrictOOMScoreAdj(want, own int) int {
	if want < own {
		return own
	}
	return want
}

// HostCapabilities returns every capability that this process can grant,
// as "CAP_…" names: those the running kernel knows that are in this
// process's bounding set. It is what a privileged pod's pause process gets.
// (A runtime asked for a capability outside its bounding set fails with
// EPERM: on a host whose bounding set lacks CAP_SYS_RESOURCE, "all
// capabilities" cannot be had.)
func HostCapabilities() ([]string, error) {
	caps, err := capability.ListSupported()
	if err != nil {
		return nil, fmt.Errorf("spec: host capabilities: %w", err)
	}
	self, err := capability.NewPid2(0)
	if err == nil {
		err = self.Load()
	}
	if err != nil {
		return nil, fmt.Errorf("spec: own capabilities: %w", err)
	}
	names := make([]string, 0, len(caps))
	for _, c := range caps {
		if self.Get(capability.BOUNDING, c) {
			names = append(names, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return names, nil
}
