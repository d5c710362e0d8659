package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// EnvRequireRoot names the variable that turns privilege skips into failures.
const EnvRequireRoot = "PODSMITH_REQUIRE_ROOT"

// Capabilities that privileged tests need (bit numbers from linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// rootState is what the gate looks at; split out so the decision is testable
// without being root.
type rootState struct {
	euid    int
	require bool
	capEff  uint64
	capsErr error
}

func currentRootState() rootState {
	st := rootState{euid: os.Geteuid(), require: os.Getenv(EnvRequireRoot) == "1"}
	st.capEff, st.capsErr = effectiveCaps()
	return st
}

// skipOrFail skips t, or fails it when privileged tests are required.
func skipOrFail(t testing.TB, require bool, reason string) {
	t.Helper()
	if require {
		t.Fatalf("%s, but %s=1 demands privileged tests run", reason, EnvRequireRoot)
		return
	}
	t.Skip(reason)
}

func (st rootState) check(t testing.TB) {
	t.Helper()
	if st.euid != 0 {
		skipOrFail(t, st.require, "test needs root")
		return
	}
	if st.capsErr != nil {
		skipOrFail(t, st.require, fmt.Sprintf("cannot read capabilities: %v", st.capsErr))
		return
	}
	for _, c := range []struct {
		bit  uint
		name string
	}{{capSysAdmin, "CAP_SYS_ADMIN"}, {capNetAdmin, "CAP_NET_ADMIN"}} {
		if st.capEff&(1<<c.bit) == 0 {
			skipOrFail(t, st.require, "test needs "+c.name)
			return
		}
	}
}

// RequireRoot skips t unless it runs as root with CAP_SYS_ADMIN and
// CAP_NET_ADMIN. With PODSMITH_REQUIRE_ROOT=1 it fails t instead of skipping.
func RequireRoot(t testing.TB) {
	t.Helper()
	currentRootState().check(t)
}

// RequireBinaries looks each name up on PATH (or takes it as given when it
// contains a slash) and returns the resolved paths. A missing binary skips t,
// or fails it with PODSMITH_REQUIRE_ROOT=1.
func RequireBinaries(t testing.TB, names ...string) map[string]string {
	t.Helper()
	require := os.Getenv(EnvRequireRoot) == "1"
	paths := make(map[string]string, len(names))
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			skipOrFail(t, require, fmt.Sprintf("test needs %s: %v", n, err))
			return nil
		}
		paths[n] = p
	}
	return paths
}

// effectiveCaps reads CapEff from /proc/self/status.
func effectiveCaps() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	return parseCapEff(string(b))
}

func parseCapEff(status string) (uint64, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff line in /proc/self/status")
}
