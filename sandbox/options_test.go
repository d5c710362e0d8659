package sandbox_test

import (
	"os"
	"path/filepath"

	"github.com/podsmith/podsmith/sandbox"
)

// realOptionsAt sets every directory of opts under root and makes the
// node's resolv.conf a file of the test's.
func realOptionsAt(root string, opts sandbox.Options) (sandbox.Options, error) {
	opts.StateDir = filepath.Join(root, "state")
	opts.RunDir = filepath.Join(root, "run")
	opts.NetnsDir = filepath.Join(root, "netns")
	opts.HostResolvConf = filepath.Join(root, "resolv.conf")
	return opts, os.WriteFile(opts.HostResolvConf, []byte("nameserver 192.0.2.53\n"), 0o644)
}
