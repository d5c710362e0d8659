// Package sandbox builds Kubernetes pod sandboxes: given a pod's config
// (package pod) it makes the pause process's OCI bundle, the host
// resources the bundle points at and, with a Runtime, the running pause, in
// one transaction.
//
// # Use
//
// A Builder holds a node's settings (Options) and is safe for concurrent
// use. Plan validates a config and computes everything (ID, name, paths,
// cgroup, the complete spec) with no side effect, returning every problem
// at once in a *ConfigError, sorted by field path. Build runs the steps
// (Steps): reserve the name, make the bundle dir, write resolv.conf,
// hostname and hosts, bind the shared pause rootfs, mount /dev/shm, create
// and pin the network namespace (inside the pod's own user namespace, also
// pinned, when it asks for one), write config.json, attach the namespace
// to the network while (with a Runtime) the pause is created, and start
// it. A pod without a pause (Options.PauseMode) gets its IPC and UTS
// namespaces pinned instead of a rootfs, a config.json and a start.
// BuildOrGet is Build for callers that retry, as kubelet does. Find and
// List read sandboxes back; Sandbox.ContainerOpts puts an app container
// into a pod; Sandbox.Stop is CRI's StopPodSandbox, Sandbox.Destroy its
// RemovePodSandbox (both kill and reap the pause, then delete it while the
// network detaches); Recover, at start-up, finishes what crashes left.
//
// # The journal
//
// Each sandbox has a journal: StateDir/journals/<id>, one file from the
// Build's first step to the end of its Destroy, never moved. Its first
// record describes the sandbox (with the node's boot ID); then, before
// each step changes the host, the step appends the undo of that change, as
// data: {"op":"unmount","path":...}, {"op":"netns-remove",...},
// {"op":"unpin",...},
// {"op":"net-detach",...}, {"op":"runtime-delete",...}. A failed Build
// replays it backwards; Destroy is the same replay; Recover replays the
// journals of Builds and Destroys that did not finish, and of sandboxes
// of an earlier boot. Every undo treats "never happened" and "already
// undone" as success, every undo runs even when one fails (each failure
// an *UndoError, joined), and what could not be undone stays in the
// journal, the sandbox in StateNeedsCleanup, until a Destroy finishes it.
// Rollbacks run on a context detached from the caller's, so a cancelled
// request still cleans up.
//
// Records are plain writes until the network step; from its record of the
// attachment on (the network's address allocation outlives a reboot, so
// must its undo) they are fsynced. A new journal reserves room on disk
// for its teardown's records, so a Destroy works on a full disk.
//
// # Concurrency
//
// Three rules, across goroutines and processes:
//   - A sandbox's journal is flock'ed by whoever changes the sandbox: a
//     Build (from its creation, born locked, to its return), a Stop, a
//     Destroy, Recover. Others wait for it (a Destroy waits for a Build),
//     and readers (Find, List) say StateBuilding when it is held by a
//     Build. Recover decides about a sandbox only while holding it.
//   - A name is reserved by a symlink, StateDir/names/<hash> -> ID, made
//     atomically after the journal and removed by its undo, before the
//     journal. A link whose sandbox has no journal is stale: a Build that
//     wants the name and Recover remove it, under the names dir's lock.
//     Reads change nothing.
//   - CollectNetwork (CNI GC) takes StateDir/network.lock exclusively; a
//     Build holds it shared from its record of the attachment to the end
//     of the attach, so the GC's list of live sandboxes misses none.
//
// # Seams
//
// What touches the host goes through three small interfaces: Host
// (namespaces, mounts, the pause rootfs; RealHost is podsmith's netns,
// mounts and spec packages), Network (netns/cni) and Runtime (package
// oci). Package sandboxtest fakes all three so code that embeds a Builder
// can be tested as a normal user, failures and crashes included.
//
// What it is not for: it does not pull images or manage app containers.
// Building needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and Linux; Plan needs
// neither. Errors are typed and never need matching on text.
package sandbox
