package sandbox_test

import (
	"os"
	"path/filepath"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/oci"
	"github.com/podsmith/podsmith/sandbox"
)

// envCrashCgroup is the crash child's cgroup parent (the test's own).
const envCrashCgroup = "PODSMITH_TEST_CRASH_CGROUP"

// crashRuntimeAt is the runtime the crash test and its child share: its
// state under dir/runtime.
func crashRuntimeAt(dir, name string) (*oci.Runtime, error) {
	rd := filepath.Join(dir, "runtime")
	if err := os.MkdirAll(rd, 0o700); err != nil {
		return nil, err
	}
	return testutil.RuntimeAt(rd, name)
}

// crashRuntime gives the crash child the test's runtime, if it named one.
func crashRuntime(dir string, o *sandbox.Options) error {
	name := os.Getenv(envCrashRuntime)
	if name == "" {
		return nil
	}
	rt, err := crashRuntimeAt(dir, name)
	if err != nil {
		return err
	}
	o.Runtime, o.CgroupParent = rt, os.Getenv(envCrashCgroup)
	return nil
}

func init() { realRuntime = crashRuntime }
