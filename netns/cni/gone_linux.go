package cni

import (
	"context"
	"os"
	"path/filepath"

	"github.com/podsmith/podsmith/internal/linkwait"
)

// waitGone is linkwait.Gone: a pod's veth pair goes when the kernel tears
// its network namespace down, a little after the last pin and process let
// go of it; a Detach waits for that, so that what a DEL leaves to the
// kernel is gone too when it returns.
func waitGone(ctx context.Context, names []string) error { return linkwait.Gone(ctx, names) }

// hostVeths returns, of a result's interfaces, those on the host's side
// that go with the pod: no sandbox, and not a bridge (which stays).
func hostVeths(names []string) []string {
	var out []string
	for _, name := range names {
		if name == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join("/sys/class/net", name, "bridge")); err == nil {
			continue
		}
		out = append(out, name)
	}
	return out
}
