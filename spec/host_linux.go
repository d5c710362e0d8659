package spec

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capSysResource is CAP_SYS_RESOURCE's bit number.
const capSysResource = 24

// ownOOMScoreAdj returns this process's oom_score_adj and whether it may
// lower a score below it (CAP_SYS_RESOURCE in the effective set).
func ownOOMScoreAdj() (own int, canLower bool, err error) {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, false, fmt.Errorf("spec: own OOM score: %w", err)
	}
	own, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false, fmt.Errorf("spec: own OOM score: %w", err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false, fmt.Errorf("spec: own capabilities: %w", err)
	}
	caps, err := parseCapEff(string(status))
	if err != nil {
		return 0, false, err
	}
	return own, caps&(1<<capSysResource) != 0, nil
}

func parseCapEff(status string) (uint64, error) {
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("spec: own capabilities: %w", err)
			}
			return caps, nil
		}
	}
	return 0, fmt.Errorf("spec: own capabilities: no CapEff in /proc/self/status")
}
