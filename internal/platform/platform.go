// Package platform holds what podsmith's packages share about the OS they
// run on: the one ErrNotSupported value that every package re-exports, so
// that errors.Is(err, sandbox.ErrNotSupported) holds for an error from any
// podsmith package.
package platform

import "errors"

// ErrNotSupported is returned by Linux-only operations on other systems.
var ErrNotSupported = errors.New("not supported on this operating system")
