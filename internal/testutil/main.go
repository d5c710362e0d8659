package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// MainWithBinaries is a TestMain for black-box tests of commands: it
// builds the packages pkgs (go build, relative to the test's package) into
// a temp dir that everyone may read (an unprivileged test runs them too),
// gives the dir to use, runs the tests, removes the dir and exits.
func MainWithBinaries(m *testing.M, use func(dir string), pkgs ...string) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format, args...)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "podsmith-bin-")
	if err != nil {
		fail("%v\n", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		fail("%v\n", err)
	}
	for _, pkg := range pkgs {
		if out, err := exec.Command("go", "build", "-o", dir, pkg).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			fail("build %s: %v\n%s", pkg, err, out)
		}
	}
	use(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
