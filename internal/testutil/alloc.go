package testutil

import "runtime"

// Allocated returns the bytes allocated on the heap while f ran (freed or
// not): a bound a test can assert where a timing would flake. Run nothing
// else meanwhile.
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
