// Package nspin creates, pins, enters and removes a pod's IPC and UTS
// namespaces, as package netns does its network namespace: for a pod
// without a pause process (see sandbox.Options.PauseMode), whose
// containers join the pins, as CRI-O's pinns makes them.
//
// NewUTS sets the pod's hostname inside the new UTS namespace; NewIPC
// applies the pod's IPC sysctls (kernel.shm*, kernel.msg*, kernel.sem,
// fs.mqueue.*) inside the new IPC namespace, since no pause's runtime
// applies them. Both pin the namespace by bind-mounting the creating
// thread's namespace file onto dir/name, a new file (ErrExist when it
// exists). The thread rules are netns's: every operation that enters a
// namespace runs on a throwaway goroutine locked to its OS thread, which
// is moved back afterwards, or ended if it cannot be. Remove is
// idempotent. The caller picks the directory and the names, and removes
// only pins of its own. Linux only (ErrNotSupported elsewhere); creating
// and removing pins needs CAP_SYS_ADMIN.
package nspin
