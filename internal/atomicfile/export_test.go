package atomicfile

// SetWrite replaces write(2) for a test of the external package (which may
// import internal/testutil: this package's own tests may not, should
// testutil come to import it) and returns its restore.
func SetWrite(fn func(fd int, p []byte) (int, error)) (restore func()) {
	real := write
	write = fn
	return func() { write = real }
}
