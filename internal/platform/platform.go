// Package platform holds what podsmith's packages share about the OS they
// run on: the one ErrNotSupported value that every package re-exports, so
// that errors.Is(err, sandbox.ErrNotSupported) holds for an error from any
// podsmith package.
package platform

import (
	"errors"
	"fmt"
)

// ErrNotSupported is returned by Linux-only operations on other systems. It
// matches errors.ErrUnsupported.
var ErrNotSupported = fmt.Errorf("not supported on this operating system: %w", errors.ErrUnsupported)
