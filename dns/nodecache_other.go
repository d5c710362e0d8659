//go:build !linux

package dns

import (
	"os"
	"time"
)

func inodeAndCtime(os.FileInfo) (int64, time.Time) { return 0, time.Time{} }
