// Package spec owns the OCI runtime spec of a pod sandbox's pause (infra)
// process: the defaults, the functional options that edit it, the
// annotation keys podsmith writes, the seccomp profiles, the shared pause
// rootfs, and saving config.json into a bundle.
//
// A spec starts from the pause defaults (New), which are runtime-tools'
// generate defaults tightened for a process that only sleeps: read-only
// root, no new privileges, an unprivileged user (65535), the default
// capability set without ambient or inheritable capabilities, masked and
// read-only /proc paths, new pid, ipc, uts, mount and network namespaces,
// and an OOM score adjustment of -998 so the pause outlives the pod's
// containers under memory pressure. Options (type Opt) then edit it; they
// are small pure functions of *Spec, composed with Compose, and return
// typed errors for input they refuse (a sysctl that is not namespaced, a
// seccomp profile that does not parse).
//
// What it is not for: it touches nothing on the host except where a
// function says so (Save writes config.json, PreparePauseRootfs builds the
// shared rootfs, LoadSeccompProfile reads a profile, EffectiveOOMScoreAdj
// reads the process's own oom_score_adj). It does not create namespaces,
// mounts or files that the spec points at; the sandbox Builder does.
//
// The ociVersion written is 1.0.2 by default, the lowest version that
// covers what the pause spec uses: crun 1.8.1 refuses "1.2.1".
package spec
