// Package nsthread moves work onto an OS thread inside a namespace, and
// pins namespaces: the one implementation of the thread rules that
// podsmith's netns and nspin packages document.
//
// Run executes a function in a throwaway goroutine locked to its thread,
// after moving that thread into a namespace (a new one, or one given by a
// file), and moves it back afterwards; if moving back fails, the thread
// stays locked and the Go runtime ends it with the goroutine. Pin creates
// a namespace on such a thread and bind-mounts the thread's namespace file
// onto a pin file, so the namespace outlives the thread.
package nsthread

import "errors"

// Errors, matched with errors.Is.
var (
	// ErrWrongKind: the path is not a namespace file of the kind asked for
	// (a stale pin after a reboot is an empty regular file).
	ErrWrongKind = errors.New("not a namespace of the kind asked for")
)

// Kind is a kind of namespace, by its name under /proc/PID/ns.
type Kind string

// The kinds of namespace a pod's pins hold.
const (
	Net Kind = "net"
	IPC Kind = "ipc"
	UTS Kind = "uts"
)
