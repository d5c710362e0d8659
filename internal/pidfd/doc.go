// Package pidfd names processes by pidfd (Linux 5.10+, for
// PIDFD_NONBLOCK), so that no signal or wait reaches a newer process that
// has taken an old one's PID. It is shared by the runtime driver (oci),
// the cgroup cleanup (cgroupdir) and the CNI network's cleanup of plugins
// a dead caller left running.
package pidfd
