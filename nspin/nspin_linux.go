package nspin

import "golang.org/x/sys/unix"

func sethostname(name string) error { return unix.Sethostname([]byte(name)) }

func closeFD(fd int) { _ = unix.Close(fd) }
