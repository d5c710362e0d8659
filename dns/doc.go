// Package dns produces the three name-service files that a pod sandbox
// bind-mounts into every container of the pod: /etc/resolv.conf, /etc/hostname
// and /etc/hosts.
//
// Each file goes through the same three stages:
//
//   - validate: [Config.Validate] checks a pod's DNS configuration (CRI's
//     DNSConfig) against the resolver's limits ([MaxNameservers],
//     [MaxSearchDomains], [MaxSearchLineChars], [MaxOptionsLineChars]) and
//     refuses any entry that could inject a line into resolv.conf
//     (whitespace, newlines, NUL, '#', ';'); [ValidateHostname] and
//     [Hostname] check and choose the pod's hostname. Every problem is
//     reported, each as a *[ValidationError] that matches [ErrInvalid], so a
//     caller can map them to field paths with errors.As instead of reading
//     error text.
//   - render: [Render] builds resolv.conf from a Config; [FromHost] and
//     [SanitizeHost] reuse the node's resolv.conf instead, dropping
//     loopback nameservers (such as systemd-resolved's stub 127.0.0.53)
//     that are unreachable from the pod's own network namespace;
//     [HostnameFile] and [Hosts] render the other two files.
//   - write: [WriteFile] replaces a file atomically (temporary file in the
//     same directory, then rename), mode 0644, so a container never sees a
//     half-written file.
//
// What this package is not for: it does no DNS resolution and no network
// access of any kind, it reads no file except the host resolv.conf that
// [FromHost] is pointed at, and it does not decide where the files live or
// how they are mounted; the sandbox package does. Nothing here needs root,
// and everything builds on every OS.
package dns
