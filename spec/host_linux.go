package spec

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
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

// openRegular opens path for reading if it is a regular file, and opens
// nothing else: the path is looked at through an O_PATH descriptor (no
// open(2) of the file itself, which for a device can rewind a tape or arm
// a watchdog) and reopened only once fstat says it is a regular file. A
// path of another kind gives a *notRegularError.
func openRegular(path string) (*os.File, error) { return openRegularFlags(path, 0) }

// openOwn is openRegular for a file podsmith wrote itself: a symlink there
// was planted, and is refused as not a regular file.
func openOwn(path string) (*os.File, error) { return openRegularFlags(path, unix.O_NOFOLLOW) }

func openRegularFlags(path string, flags int) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &notRegularError{kind: fileKind(st.Mode)}
	}
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return f, nil
}

// fileKind names the kind of file a stat mode says.
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	case unix.S_IFLNK:
		return "a symlink"
	}
	return "a special file"
}
