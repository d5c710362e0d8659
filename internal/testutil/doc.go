// Package testutil holds podsmith's test helpers: the privilege gate and the
// leak checker that every privileged test uses.
//
// RequireRoot skips a test that needs root when it runs as a normal user, but
// fails it when PODSMITH_REQUIRE_ROOT=1 is set (`make test` as root, and CI),
// so a privileged test can never pass by quietly skipping where it was meant
// to run.
//
// CheckLeaks snapshots what a test could leave behind (mount points and files
// under the test's own directories, netns pins in its pin dir, network links
// with the test's own names) and fails the test in a t.Cleanup when anything
// new remains. It looks only at what the test itself could have made, so the
// tests of other packages running at the same time on the same machine are
// never seen as leaks. After reporting a leak it removes what it can (lazy
// unmount, unlink, link delete) so one failing test does not spoil the
// machine for the next.
//
// This package is for podsmith's own tests; it is internal and not an API.
package testutil
