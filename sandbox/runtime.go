package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"

	"github.com/podsmith/podsmith/internal/journal"
)

// runtime returns the runtime of a handler ("" is Options.Runtime), nil
// if the Builder has none.
func (b *Builder) runtime(handler string) Runtime {
	if handler == "" {
		return b.opts.Runtime
	}
	return b.opts.RuntimeHandlers[handler]
}

// pauseRecord is the Data of a runtime-delete record: the handler whose
// runtime made the container.
type pauseRecord struct {
	Handler string `json:"runtime_handler,omitempty"`
}

// create creates the pause container, its removal (and its cgroup's)
// journaled first.
func (bl *build) create(ctx context.Context) error {
	handler := bl.p.Config.RuntimeHandler
	r := journal.Record{Op: opRemovePause, Name: bl.p.ID, Path: bl.p.CgroupDir}
	if handler != "" {
		r.Data, _ = json.Marshal(pauseRecord{handler})
	}
	if err := bl.record(r, false); err != nil {
		return err
	}
	rt := bl.b.runtime(handler)
	create := rt.Create
	if r, ok := rt.(runner); ok {
		create = r.Run
	}
	pid, err := create(ctx, bl.p.ID, bl.p.BundleDir)
	bl.p.PausePid = pid
	return err
}

// runner is a Runtime that creates and starts a container in one call
// (oci's Run: one runtime process instead of two).
type runner interface {
	Run(ctx context.Context, id, bundle string) (pid int, err error)
}

// start starts the pause, unless the create step ran it.
func (bl *build) start(ctx context.Context) error {
	rt := bl.b.runtime(bl.p.Config.RuntimeHandler)
	if _, ok := rt.(runner); ok {
		return nil
	}
	return rt.Start(ctx, bl.p.ID)
}

// pauseRuntime returns the runtime that made the pause of a runtime-delete
// record.
func (b *Builder) pauseRuntime(r journal.Record) (Runtime, error) {
	var pr pauseRecord
	if r.Data != nil {
		if err := json.Unmarshal(r.Data, &pr); err != nil {
			return nil, err
		}
	}
	rt := b.runtime(pr.Handler)
	if rt == nil {
		return nil, fmt.Errorf("the journal holds a pause container of runtime handler %q, but the Builder has no such runtime to remove it", pr.Handler)
	}
	return rt, nil
}

// A runtime-delete record is undone in two parts, kill and wait
// (stopPause), then delete (deletePause): never a runtime's delete
// --force, which sleeps in runc 1.1. Each treats a container that is gone,
// or whose process has exited, as done.

// stopPause kills the pause and waits until it has exited.
func stopPause(ctx context.Context, rt Runtime, id string) error {
	if err := rt.Kill(ctx, id, syscall.SIGKILL); err != nil {
		return err
	}
	return rt.Wait(ctx, id)
}

// deletePause deletes the stopped pause of a runtime-delete record. Delete
// also clears what a create cut short left of the runtime's state, and
// the cgroup it made, which the runtime never deletes then, goes here
// (with whatever a killed create left in it).
func (b *Builder) deletePause(ctx context.Context, rt Runtime, r journal.Record) error {
	if err := rt.Delete(ctx, r.Name); err != nil || r.Path == "" {
		return err
	}
	return b.opts.Host.RemoveCgroup(ctx, r.Path)
}
