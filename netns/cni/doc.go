// Package cni attaches a pod's network namespace to the node's network
// through CNI plugins, with containernetworking/cni's libcni, the way
// kubelet-era runtimes do: ADD when the sandbox is built, CHECK on demand,
// DEL when it is stopped or destroyed, GC for attachments nobody knows.
//
// A Network implements the sandbox Builder's network seam
// (sandbox.NetworkCollector). Its life for one pod is Prepare, Attach, and
// later Detach:
//
//   - Prepare loads the network configuration (the conf dir's lexically
//     first .conflist, .conf or .json file, or the network pinned by name),
//     checks the pod's bandwidth annotations, and stores in the
//     attachment's State everything a DEL will need, the configuration
//     included. The sandbox journals the attachment before Attach runs, so
//     a DEL after a failure, a crash or a reboot uses the configuration the
//     ADD used, even if the conf dir has changed since.
//   - Attach runs ADD with the runtime configuration: container ID = the
//     sandbox ID, the pinned netns, ifname eth0, CNI_ARGS K8S_POD_NAME,
//     K8S_POD_NAMESPACE, K8S_POD_INFRA_CONTAINER_ID and K8S_POD_UID, and
//     the capability arguments portMappings, bandwidth, dns and cgroupPath.
//     A result without an address on the pod's interface is an error, as
//     in containerd.
//   - Detach runs DEL, on a context detached from the caller's with its own
//     timeout. It is idempotent, and when the netns pin is gone (after a
//     reboot) it runs with an empty netns path, so IPAM still releases the
//     address. When one plugin's DEL fails, the others still run. After
//     an ADD that did not finish (its caller died, or gave up at the
//     deadline), it first kills what that ADD left running.
//
// libcni's cache (results for CHECK, DEL and GC) is kept in the Builder's
// directory for its network, StateDir/network, unless Options.CacheDir
// names another: two Builders never collect each other's attachments.
//
// Errors are typed: *Error for a plugin operation (it names the operation
// and the network, and unwraps to the plugin's *types.Error), *ConfigError
// for a configuration that does not load (it names the file), and
// *BandwidthError for a bad bandwidth annotation; all match ErrCNI.
//
// What it is not for: it does not write CNI configurations or install
// plugins, and it does not bring the loopback interface up (the netns
// package does that when it makes the namespace).
package cni
