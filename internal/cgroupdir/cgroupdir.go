// Package cgroupdir removes a container's cgroup directory from every
// mounted cgroup hierarchy: what a runtime's create leaves behind when it
// is killed half-way (a runtime's own delete removes the cgroup of a
// container it knows, but not of one it never finished). It is the only
// place podsmith touches /sys/fs/cgroup; package cgroups stays pure logic.
package cgroupdir

import (
	"context"
	"errors"
)

// ErrBusy is matched by Remove's error for a cgroup that still holds
// processes (or child cgroups).
var ErrBusy = errors.New("cgroup busy")

// Remove removes the cgroup directory dir (a path relative to each
// hierarchy's root, as cgroups.Dir gives it) in every mounted cgroup
// hierarchy where it exists. A directory that is not there is success.
// Processes still in it (a runtime's init that a killed create left,
// about to exit or not) are killed and waited for, until ctx ends: the
// cgroup is the container's alone. One that stays busy (a child cgroup in
// it) is an error matching ErrBusy.
func Remove(ctx context.Context, dir string) error { return remove(ctx, dir) }
