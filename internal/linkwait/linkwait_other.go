//go:build !linux

package linkwait

import "context"

// Gone needs Linux; elsewhere nothing is waited for.
func Gone(context.Context, []string) error { return nil }
