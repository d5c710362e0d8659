//go:build !linux

package nspin

func sethostname(string) error { return ErrNotSupported }

func closeFD(int) {}
