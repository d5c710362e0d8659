package testutil

import "runtime"

// Allocated returns the bytes the heap grew by while f ran: a bound a test
// can assert where a timing would flake (run nothing else meanwhile).
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
