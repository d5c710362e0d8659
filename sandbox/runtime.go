package sandbox

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/journal"
)

// create creates the pause container, its removal (and its cgroup's)
// journaled first.
func (bl *build) create(ctx context.Context) error {
	if err := bl.record(journal.Record{Op: opRemovePause, Name: bl.p.ID, Path: bl.p.CgroupDir}, false); err != nil {
		return err
	}
	pid, err := bl.b.opts.Runtime.Create(ctx, bl.p.ID, bl.p.BundleDir)
	bl.p.PausePid = pid
	return err
}

func (bl *build) start(ctx context.Context) error { return bl.b.opts.Runtime.Start(ctx, bl.p.ID) }

// A pause container is removed in two parts, kill and wait (stopPause),
// then delete (deletePause): never a runtime's delete --force, which
// sleeps in runc 1.1.

// stopPause kills the pause and waits until it has exited. A container
// that is gone is stopped.
func (b *Builder) stopPause(ctx context.Context, id string) error {
	rt := b.opts.Runtime
	if rt == nil {
		return errors.New("the journal holds a pause container, but the Builder has no Runtime to remove it")
	}
	st, err := rt.State(ctx, id)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case st.Status != specs.StateStopped:
		if err := rt.Kill(ctx, id, syscall.SIGKILL); err != nil {
			return err
		}
		return rt.Wait(ctx, id)
	}
	return nil
}

// deletePause deletes a stopped pause container. A container that is gone
// is deleted; Delete also clears what a create cut short left of the
// runtime's state, and the cgroup it made, which the runtime never deletes
// then, goes here (with whatever a killed create left in it).
func (b *Builder) deletePause(ctx context.Context, id, cgroup string) error {
	if err := b.opts.Runtime.Delete(ctx, id); err != nil || cgroup == "" {
		return err
	}
	return b.opts.Host.RemoveCgroup(ctx, cgroup)
}
