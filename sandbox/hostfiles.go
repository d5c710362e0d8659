package sandbox

import (
	"os"
	"sync"
	"time"

	"github.com/podsmith/podsmith/dns"
)

// hostResolv caches what pods without a DNS config get from the node's
// resolv.conf, re-reading it only when the file changes (another inode,
// size or modification time), so a Plan costs a stat, not a read.
type hostResolv struct {
	path string

	mu      sync.Mutex
	key     fileKey
	results [2]resolvResult // [0]: pod network, [1]: host network
}

type fileKey struct {
	ino, size    int64
	mtime, ctime time.Time
	ok           bool
}

type resolvResult struct {
	data []byte
	err  error
}

func statKey(path string) (fileKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileKey{}, err
	}
	k := fileKey{size: st.Size(), mtime: st.ModTime(), ok: true}
	k.ino, k.ctime = inodeAndCtime(st)
	return k, nil
}

// get returns the node's resolv.conf as a pod gets it.
func (h *hostResolv) get(hostNetwork bool) ([]byte, error) {
	i := 0
	if hostNetwork {
		i = 1
	}
	key, err := statKey(h.path)
	if err != nil {
		return dns.FromHost(h.path, hostNetwork) // the error, with the path
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if key != h.key {
		for j, hn := range []bool{false, true} {
			data, err := dns.FromHost(h.path, hn)
			h.results[j] = resolvResult{data, err}
		}
		h.key = key
	}
	r := h.results[i]
	return r.data, r.err
}
