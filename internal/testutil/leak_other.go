//go:build !linux

package testutil

import "testing"

// LeakCheck is only implemented on Linux, where podsmith's privileged tests run.
type LeakCheck struct{}

// CheckLeaks skips t: leak checks need Linux.
func CheckLeaks(t testing.TB, _ Leaks) *LeakCheck {
	t.Helper()
	t.Skip("leak checks need Linux")
	return &LeakCheck{}
}

// TrackLink does nothing outside Linux.
func (*LeakCheck) TrackLink(string) {}

// TrackProcess does nothing outside Linux.
func (*LeakCheck) TrackProcess(int) {}

// Leaked reports nothing outside Linux.
func (*LeakCheck) Leaked() string { return "" }
