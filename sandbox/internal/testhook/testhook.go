// Package testhook lets podsmith's own tests and package sandboxtest reach
// into a sandbox Builder where no embedder should: a hook before each step
// of a Build. It is internal to sandbox, so nothing outside it can import
// it.
package testhook

import (
	"context"
	"errors"
)

// SetBeforeStep, set by package sandbox, adds fn to the hooks that run
// before each step of a Build made with opts (a *sandbox.Options): an
// error fails the Build at that step, ErrCrash abandons it.
var SetBeforeStep func(opts any, fn func(ctx context.Context, id, step string) error)

// ErrCrash, returned by a hook, makes the Build stop where it is as if its
// process had died: no rollback, the journal left for Recover.
var ErrCrash = errors.New("testhook: simulated crash")
