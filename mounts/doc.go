// Package mounts owns the mounts of a pod sandbox: the tmpfs behind the
// pod's /dev/shm, the read-only bind of the node's shared pause rootfs into
// each bundle, and the mount entries of the runtime spec that bind the
// sandbox's files (resolv.conf, hostname, hosts, /dev/shm) into the pause
// container.
//
// MountShm makes a directory and mounts a tmpfs named "shm" on it with mode
// 1777, the requested size and MS_NOEXEC|MS_NOSUID|MS_NODEV, plus an SELinux
// context when a mount label is given. BindReadOnly binds a directory
// read-only onto a new one. Unmount undoes either and is idempotent: a path
// that is not mounted, or does not exist, is success, so it can run again
// after a crash or a partial cleanup. Unmounts are lazy (MNT_DETACH): a
// process still holding a file open does not block teardown.
//
// The spec helpers (ReadOnlyBind, ShmBind) only build specs.Mount values;
// they touch nothing on the host.
//
// Mounting needs CAP_SYS_ADMIN and Linux; elsewhere the host-facing
// functions return ErrNotSupported. The package does not pick paths: the
// caller (the sandbox Builder) decides where the shm lives.
package mounts
