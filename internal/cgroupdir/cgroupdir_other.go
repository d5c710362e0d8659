//go:build !linux

package cgroupdir

import "context"

func remove(context.Context, string) error { return nil } // no cgroups: nothing to remove
