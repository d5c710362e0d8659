// Package cri is what a CRI shim built on a podsmith sandbox.Builder needs
// of the CRI's v1 messages (k8s.io/cri-api): the conversion of a
// RunPodSandboxRequest into a pod.Config, the PodSandbox and
// PodSandboxStatus of a sandbox, ListPodSandbox's filter, and the gRPC
// status of an error. It is a module of its own, so that the library stays
// free of protobuf and gRPC; examples/crishim is a shim made with it.
//
// The conversion goes field by field from the Go types, never through
// JSON: protojson writes int64 fields as strings, which pod's strict
// decoder refuses, and a strict decoder on an API path would turn every
// field a newer kubelet adds into an error. What the conversion does with
// a field it does not know (one added to the CRI after the cri-api version
// this module is built with) depends on where it is: in the security
// context (LinuxSandboxSecurityContext and the messages in it) such a
// field may ask for something podsmith cannot give, and the request is
// refused (*UnsupportedError, gRPC InvalidArgument); anywhere else it is
// ignored, as kubelet's older runtimes ignore it. Known fields that ask for
// something podsmith cannot give are refused too: a Windows config, user
// namespaces other than the node's.
package cri
