package dns

import (
	"os"
	"sync"
	"time"
)

// NodeResolvConf is the node's resolv.conf as pods get it (FromHost),
// kept in memory and read again only when the file changes (another
// inode, size, modification or change time): asking for it costs a stat,
// not a read. It is safe for concurrent use.
type NodeResolvConf struct {
	path string

	mu      sync.Mutex
	key     fileKey
	results [2]resolvResult // [0]: pod network, [1]: host network
}

// NewNodeResolvConf returns the cache of the node's resolv.conf at path
// (DefaultHostResolvConf if empty). It reads nothing yet.
func NewNodeResolvConf(path string) *NodeResolvConf {
	if path == "" {
		path = DefaultHostResolvConf
	}
	return &NodeResolvConf{path: path}
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

// ForPod returns what FromHost returns for the node's resolv.conf: the
// file as a pod with or without the host network gets it, or why it
// cannot.
func (c *NodeResolvConf) ForPod(hostNetwork bool) ([]byte, error) {
	st, err := os.Stat(c.path)
	if err != nil {
		return FromHost(c.path, hostNetwork) // the error, with the path
	}
	key := fileKey{size: st.Size(), mtime: st.ModTime(), ok: true}
	key.ino, key.ctime = inodeAndCtime(st)
	c.mu.Lock()
	defer c.mu.Unlock()
	if key != c.key {
		for i, hn := range []bool{false, true} {
			data, err := FromHost(c.path, hn)
			c.results[i] = resolvResult{data, err}
		}
		c.key = key
	}
	r := c.results[0]
	if hostNetwork {
		r = c.results[1]
	}
	return r.data, r.err
}
