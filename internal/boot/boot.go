// Package boot tells which boot of the node this is: what a sandbox of an
// earlier boot has lost (its mounts, namespaces and processes) is known by
// a boot ID that is not this one, or a time before this boot.
package boot

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ID returns the node's boot ID (/proc/sys/kernel/random/boot_id), "" if
// unknown.
var ID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// Time returns when the node booted (btime in /proc/stat), the zero time
// if unknown.
var Time = sync.OnceValue(func() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(sec, 0)
			}
		}
	}
	return time.Time{}
})
