// Package oci drives an OCI runtime's command line (runc, crun, or any
// binary with their command line) for one kind of container: a pod
// sandbox's pause process. It implements the runtime seam of package
// sandbox (create, start, kill, wait, delete, state), so that podctl, the
// CRI shim and the tests share one driver.
//
// The runtime keeps its state under Options.Root, never in its own default
// state dir. Every call runs the runtime's binary once, except that State
// and Delete of a container the runtime has no directory for answer
// without running it: both runc and crun keep one directory per container
// under their root, named by its ID.
//
// Removing a container is idempotent: Kill, Wait and Delete of a container
// that is gone (or never was) succeed, and Delete also clears what a
// create killed half-way left behind. A runtime's `delete --force` is not
// used: runc 1.1 sleeps 100 ms in it before its first look. Remove the
// pause with Kill (SIGKILL), Wait, Delete instead.
//
// Who reaps the pause. A runtime's create leaves the container's process
// behind as an orphan; it becomes the child of the nearest child subreaper
// above it, or of PID 1. A long-running embedder (a CRI shim) makes itself
// a subreaper (prctl PR_SET_CHILD_SUBREAPER), and Wait reaps a pause that is
// its child. A short-lived one (a CLI) sets Options.Monitor: create then
// runs in a small monitor process (the embedder's own binary, re-executed,
// calling MonitorMain) that outlives it, holds the pause as its child and
// reaps it when it exits, as conmon and containerd's shims do.
//
// A create cut short (the caller's context ends, or the caller dies) is
// killed with it: the runtime process gets SIGKILL when its parent dies
// (PR_SET_PDEATHSIG), and a monitor watches a pipe from its caller, kills
// the create and deletes what it made when the caller goes away before the
// create has finished. What is left after that is a container the caller
// had journaled the removal of before it called Create.
//
// Linux only: elsewhere every call returns ErrNotSupported.
package oci
