package dns

import (
	"os"
	"syscall"
	"time"
)

func inodeAndCtime(st os.FileInfo) (int64, time.Time) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int64(s.Ino), time.Unix(s.Ctim.Sec, s.Ctim.Nsec)
	}
	return 0, time.Time{}
}
