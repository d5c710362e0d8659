// Package netns creates, pins, enters and removes persistent network
// namespaces: the network namespace of a pod sandbox.
//
// New makes a namespace and keeps it alive after the creating thread is gone
// by bind-mounting the thread's namespace file onto a "pin" file (dir/name),
// as `ip netns add`, containerd and CRI-O do. The pin path is what the OCI
// spec and CNI plugins get. The loopback interface of a new namespace is
// brought up at once.
//
// Thread rules. A network namespace belongs to an OS thread, not to a
// goroutine. Every operation that enters a namespace (New, Do) runs in a
// throwaway goroutine locked to its OS thread and switches that thread back
// to its original namespace afterwards. If switching back fails, the thread
// is left locked, so that the Go runtime terminates it when the goroutine
// ends instead of reusing a thread in the wrong namespace. Callers' own
// goroutines are never moved. The function given to Do must not start
// goroutines that expect to run in the namespace: they may run on other
// threads.
//
// NewInUserNS makes the network namespace inside a new user namespace with
// the given ID mappings and pins both: a helper process (a static binary
// such as the pause) is cloned into the two namespaces by os/exec, which
// writes the mappings, since a Go process cannot enter a new user
// namespace itself; the pod's root then holds CAP_NET_ADMIN over this
// network namespace and over nothing of the node's.
//
// Remove is idempotent: a pin that is not mounted (for example after a
// reboot, or a lazy unmount by someone else) or does not exist is success.
// List returns the pins in a directory, live or stale, for orphan sweeps.
//
// The package does not attach the namespace to any network (see netns/cni)
// and does not pick the pin directory; the caller does. Creating and
// removing pins needs CAP_SYS_ADMIN; Linux only (ErrNotSupported elsewhere).
package netns
