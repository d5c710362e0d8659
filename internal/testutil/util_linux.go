package testutil

import (
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func sortDeepestFirst(paths []string) {
	sort.Slice(paths, func(i, j int) bool {
		return strings.Count(paths[i], "/") > strings.Count(paths[j], "/")
	})
}

// deleteLink removes a leaked link with iproute2 (test repair only).
func deleteLink(name string) {
	_ = exec.Command("ip", "link", "del", name).Run()
}

func killProcess(pid string) {
	if p, err := strconv.Atoi(pid); err == nil {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}
