package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// BusyboxRootfs makes a tiny rootfs of Debian's busybox-static under dir
// (dir/busybox-rootfs): /bin/busybox, /bin/sh and the empty directories
// and files a runtime mounts on (a runtime in a user namespace cannot
// create them in a read-only rootfs), and returns its path. Without /bin/busybox the test
// skips, or fails under PODSMITH_REQUIRE_ROOT=1.
func BusyboxRootfs(t testing.TB, dir string) string {
	t.Helper()
	const bin = "/bin/busybox"
	data, err := os.ReadFile(bin)
	if err != nil {
		skipOrFail(t, os.Getenv(EnvRequireRoot) == "1", "test needs Debian's busybox-static: "+err.Error())
		return ""
	}
	root := filepath.Join(dir, "busybox-rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "dev", "shm"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"etc/hostname", "etc/hosts", "etc/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	return root
}
