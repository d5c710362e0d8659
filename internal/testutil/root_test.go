package testutil

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records Skip and Fatal instead of acting.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Skip(args ...any)          { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...) }

const allCaps = 1<<capSysAdmin | 1<<capNetAdmin

func TestRootGate(t *testing.T) {
	tests := []struct {
		name          string
		st            rootState
		skip, fail    bool
		wantInMessage string
	}{
		{name: "root with caps runs", st: rootState{euid: 0, capEff: allCaps}},
		{name: "root with caps runs when required", st: rootState{euid: 0, require: true, capEff: allCaps}},
		{name: "user skips", st: rootState{euid: 1000, capEff: allCaps}, skip: true, wantInMessage: "needs root"},
		{name: "user fails when required", st: rootState{euid: 1000, require: true}, fail: true, wantInMessage: "PODSMITH_REQUIRE_ROOT=1"},
		{name: "root without CAP_SYS_ADMIN skips", st: rootState{euid: 0, capEff: 1 << capNetAdmin}, skip: true, wantInMessage: "CAP_SYS_ADMIN"},
		{name: "root without CAP_NET_ADMIN fails when required", st: rootState{euid: 0, require: true, capEff: 1 << capSysAdmin}, fail: true, wantInMessage: "CAP_NET_ADMIN"},
		{name: "unreadable caps fail when required", st: rootState{euid: 0, require: true, capsErr: errors.New("no proc")}, fail: true, wantInMessage: "no proc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			tt.st.check(r)
			assert.Equal(t, tt.skip, r.skipped != "", "skipped: %q", r.skipped)
			assert.Equal(t, tt.fail, r.failed != "", "failed: %q", r.failed)
			assert.Contains(t, r.skipped+r.failed, tt.wantInMessage)
		})
	}
}

func TestParseCapEff(t *testing.T) {
	caps, err := parseCapEff("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n")
	require.NoError(t, err)
	assert.Equal(t, uint64(0x1fffeffffff), caps)
	_, err = parseCapEff("Name:\tx\n")
	assert.Error(t, err)
	_, err = parseCapEff("CapEff:\tzz\n")
	assert.Error(t, err)
}

func TestRequireBinariesFindsAndFails(t *testing.T) {
	paths := RequireBinaries(t, "sh")
	assert.NotEmpty(t, paths["sh"])

	t.Setenv(EnvRequireRoot, "1")
	r := &recorder{TB: t}
	RequireBinaries(r, "podsmith-no-such-binary")
	assert.Contains(t, r.failed, "podsmith-no-such-binary")
}

func TestUnder(t *testing.T) {
	assert.True(t, under("/a/b", "/a"))
	assert.True(t, under("/a", "/a"))
	assert.True(t, under("/a/b", "/a/"))
	assert.False(t, under("/ab", "/a"))
	assert.False(t, under("/", "/a"))
}
