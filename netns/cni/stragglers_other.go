//go:build !linux

package cni

import "context"

func stopStragglers(context.Context, string) error { return nil }
