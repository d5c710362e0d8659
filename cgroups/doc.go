// Package cgroups holds the cgroup logic of a pod sandbox that can be
// decided without touching the host: which cgroup manager a node uses
// (systemd or cgroupfs, as runc, crun and CRI-O name them), whether a pod's
// cgroup parent fits that manager, how a systemd slice name expands into a
// cgroup path, and the OCI linux.cgroupsPath string to put in the pause
// process's runtime spec.
//
// The rules follow runc and CRI-O. With the systemd manager the parent is a
// slice ("kubepods-burstable.slice", or a path whose last element is one),
// the cgroupsPath is "<slice>:<prefix>:<id>" and the runtime creates the
// scope unit "<prefix>-<id>.scope" in that slice; [ExpandSlice] gives the
// slice's cgroup directory ("a-b.slice" is "/a.slice/a-b.slice"). With the
// cgroupfs manager the parent is a clean absolute path such as "/kubepods"
// and the cgroupsPath is "<parent>/<prefix>-<id>". A .slice parent with
// cgroupfs, or a plain path with systemd, is refused up front with a message
// that says how to fix it, instead of failing later inside the runtime.
//
// Every validation error is a typed error ([ManagerError], [ParentError],
// [SliceError], [NameError]) that matches [ErrInvalid] with errors.Is, so
// callers recognise them with errors.Is and errors.As, never by their text.
//
// The package is pure logic and works the same on every OS. It is NOT a
// cgroup manager: it creates, moves and deletes no cgroups, sets no limits,
// and reads nothing from /sys/fs/cgroup or from systemd. The OCI runtime
// creates the cgroup when it starts the pause process; [Dir] only says
// where that cgroup will be, relative to the root of the cgroup hierarchy.
package cgroups
