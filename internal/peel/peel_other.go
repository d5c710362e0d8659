//go:build !linux

package peel

import "errors"

// ErrStillMounted: more mounts are stacked on a path than Unmount peels.
var ErrStillMounted = errors.New("still mounted")

func unmount(string) error { return errors.ErrUnsupported }
