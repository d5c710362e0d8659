package regfile

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// open looks at the path through an O_PATH descriptor, which opens
// nothing, and reopens it (through /proc/self/fd) only once fstat says it
// is a regular file. The reopen is a raw one: os.OpenFile would try, and
// fail, to register a regular file with Go's poller.
func open(path string, flag int, follow bool) (*os.File, error) {
	how := unix.O_PATH | unix.O_CLOEXEC
	if !follow {
		how |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, how, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &NotRegularError{Kind: kind(modeOf(st.Mode))}
	}
	rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), flag|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(rfd), path), nil
}

// modeOf is the fs.FileMode type of a stat mode.
func modeOf(m uint32) os.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return os.ModeDir
	case unix.S_IFIFO:
		return os.ModeNamedPipe
	case unix.S_IFSOCK:
		return os.ModeSocket
	case unix.S_IFCHR:
		return os.ModeDevice | os.ModeCharDevice
	case unix.S_IFBLK:
		return os.ModeDevice
	case unix.S_IFLNK:
		return os.ModeSymlink
	}
	return os.ModeIrregular
}
