// Package sandbox builds Kubernetes pod sandboxes: given a pod's Config it
// produces a ready OCI bundle for the pause process and the host resources
// the bundle points at, in one transaction.
//
// A Builder holds a node's settings (Options) and is safe for concurrent
// use. Plan validates a Config and computes everything (ID, name, paths,
// cgroup, the complete spec) with no side effect, returning every problem
// at once in a *ConfigError with field paths. Build runs the steps (see
// Steps): reserve the name, make the bundle dir, write resolv.conf,
// hostname and hosts, bind the shared pause rootfs, mount /dev/shm, create
// and pin the network namespace, attach it to the network, write
// config.json.
//
// The journal. Before each step changes the host, it appends the undo of
// that change to the sandbox's journal as data:
// {"op":"unmount","path":...}, {"op":"netns-remove",...},
// {"op":"cni-del",...}. A failed Build replays the journal backwards;
// Destroy is the same replay; Recover replays the journals that crashed
// Builds and Destroys left, even after a reboot. Every undo treats "never
// happened" and "already undone" as success, every undo runs even when one
// fails (the errors are joined), and what could not be undone stays in
// the journal, the sandbox then reported as StateNeedsCleanup until a
// Destroy finishes it (what was undone is marked in one write at the end,
// and not at all when the journal is removed). Rollbacks run on a context
// detached from the caller's, so a cancelled request still cleans up.
//
// Where it lives. A journal starts in the run dir (RunDir/journals, a
// tmpfs that a reboot empties, like the mounts and namespaces it undoes):
// writing there costs no disk. When a Build is about to attach the pod to
// the network, whose IP allocation survives a reboot, the journal moves
// durably (fsynced, renamed) to StateDir/journals, and its network undo
// with it; from then on the Build's records are fsynced (the marks of
// what an undo did are not: a lost one only means the undo runs again,
// which every undo allows). config.json and the
// bundle's files are written to the run dir and not fsynced: a crash that
// loses them also loses the mounts they describe, and the journal undoes
// the rest. The journal's flock marks a Build or Destroy in progress, in
// this process or another, and Load, List, Recover and CollectNetwork
// respect it.
//
// The pause. With Options.Runtime (package oci drives runc and crun), the
// Build's last steps create and start the pause container, its removal
// journaled before the create like every other undo; Stop, Destroy, a
// rollback and Recover remove it (kill, wait, delete, and the cgroup a
// killed create left) before anything it uses. Without a Runtime, Build
// returns a ready bundle for the caller to run.
//
// The host-facing work goes through small interfaces (NetNSManager,
// Mounter, RootfsProvider, Network, Runtime) whose defaults are podsmith's
// netns, mounts and spec packages; package sandboxtest fakes them so code
// that embeds a Builder can be tested as a normal user.
//
// What it is not for: it does not pull images or manage app containers.
// Building needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and Linux; Plan needs
// neither.
//
// Errors are typed and never need matching on text: ErrInvalidConfig
// (*ConfigError, *DecodeError), ErrNameReserved (*NameReservedError,
// with the holder's ID), ErrNotFound, ErrNotSupported, and *StepError for
// a step that failed, which unwraps to its cause.
package sandbox
