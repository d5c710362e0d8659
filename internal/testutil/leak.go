package testutil

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Leaks says what belongs to one test. Everything is optional; a leak check
// looks only at what is named here.
type Leaks struct {
	// Roots are directories owned by the test (its temp dirs, the Builder's
	// state and run dirs). New files, directories and mount points under
	// them are leaks.
	Roots []string
	// NetnsDir is the test's netns pin dir; a new entry in it is a leak even
	// when it is not under one of the Roots.
	NetnsDir string
	// LinkPrefixes: a new network link whose name starts with one of these
	// belongs to the test (use names unique to the test).
	LinkPrefixes []string
	// Ignore lists paths under Roots that the test expects to remain,
	// with everything under them (a shared pause rootfs, say).
	Ignore []string
	// CgroupParent is a cgroup parent unique to the test (as a
	// cgroupfs-style path, "/podsmith-test-1234"): at the end no cgroup
	// may be left below it, in any hierarchy. The parent itself may stay
	// (runtimes make it); the check's cleanup removes it.
	CgroupParent string
	// Skeleton lists directories that may be created during the test and
	// remain (a tool's base directories): only these exact paths, and
	// only as directories.
	Skeleton []string
}

// report formats a set of leaked things, sorted, for a test failure.
func report(kind string, items []string) string {
	if len(items) == 0 {
		return ""
	}
	sort.Strings(items)
	return fmt.Sprintf("\n  leaked %s (%d): %s", kind, len(items), strings.Join(items, ", "))
}

// under reports whether p is root or inside it.
func under(p, root string) bool {
	return p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}

func underAny(p string, roots []string) bool {
	return slices.ContainsFunc(roots, func(r string) bool { return under(p, r) })
}

// newItems returns the members of after that are not in before.
func newItems(before map[string]bool, after []string) []string {
	var out []string
	for _, a := range after {
		if !before[a] {
			out = append(out, a)
		}
	}
	return out
}
