package spec

// AnnotationPrefix starts every annotation key podsmith writes. A pod's own
// annotations may not use it (the sandbox Builder refuses them), so a
// reader can trust these keys.
const AnnotationPrefix = "io.podsmith."

// Annotation keys podsmith writes into the pause spec. Values are strings;
// the ones described as JSON hold a JSON document.
const (
	// AnnotationSandboxID is the sandbox's 64-hex-character ID.
	AnnotationSandboxID = AnnotationPrefix + "sandbox-id"
	// AnnotationSandboxName is the sandbox's unique name,
	// k8s_<name>_<namespace>_<uid>_<attempt>.
	AnnotationSandboxName = AnnotationPrefix + "sandbox-name"
	// AnnotationNamespace is the pod's Kubernetes namespace.
	AnnotationNamespace = AnnotationPrefix + "namespace"
	// AnnotationKubeName is the pod's name (metadata.name).
	AnnotationKubeName = AnnotationPrefix + "kube-name"
	// AnnotationUID is the pod's UID (metadata.uid).
	AnnotationUID = AnnotationPrefix + "uid"
	// AnnotationMetadata is the pod's metadata (name, uid, namespace,
	// attempt) as JSON.
	AnnotationMetadata = AnnotationPrefix + "metadata"
	// AnnotationLabels is the pod's labels as a JSON object.
	AnnotationLabels = AnnotationPrefix + "labels"
	// AnnotationAnnotations is the pod's annotations as a JSON object (they
	// are also passed through as annotations of their own).
	AnnotationAnnotations = AnnotationPrefix + "annotations"
	// AnnotationLogDirectory is the pod's log directory.
	AnnotationLogDirectory = AnnotationPrefix + "log-directory"
	// AnnotationShmPath is the host path bind-mounted at /dev/shm.
	AnnotationShmPath = AnnotationPrefix + "shm-path"
	// AnnotationResolvPath is the host path of the pod's resolv.conf.
	AnnotationResolvPath = AnnotationPrefix + "resolv-path"
	// AnnotationHostnamePath is the host path of the pod's hostname file.
	AnnotationHostnamePath = AnnotationPrefix + "hostname-path"
	// AnnotationHostsPath is the host path of the pod's hosts file.
	AnnotationHostsPath = AnnotationPrefix + "hosts-path"
	// AnnotationHostname is the pod's hostname.
	AnnotationHostname = AnnotationPrefix + "hostname"
	// AnnotationCgroupParent is the cgroup parent the pod asked for (or
	// the node's default).
	AnnotationCgroupParent = AnnotationPrefix + "cgroup-parent"
	// AnnotationCreated is the sandbox's creation time, RFC 3339 with
	// nanoseconds, UTC.
	AnnotationCreated = AnnotationPrefix + "created"
	// AnnotationPrivileged is "true" for a privileged pod, else "false".
	AnnotationPrivileged = AnnotationPrefix + "privileged"
	// AnnotationHostNetwork is "true" when the pod uses the node's network
	// namespace.
	AnnotationHostNetwork = AnnotationPrefix + "host-network"
	// AnnotationHostPID is "true" when the pod uses the node's PID
	// namespace.
	AnnotationHostPID = AnnotationPrefix + "host-pid"
	// AnnotationHostIPC is "true" when the pod uses the node's IPC
	// namespace.
	AnnotationHostIPC = AnnotationPrefix + "host-ipc"
	// AnnotationNetnsPath is the pinned network namespace (absent for a
	// host-network pod).
	AnnotationNetnsPath = AnnotationPrefix + "netns-path"
	// AnnotationPortMappings is the pod's port mappings as a JSON array.
	AnnotationPortMappings = AnnotationPrefix + "port-mappings"
	// AnnotationOverhead is the pod's overhead resources as JSON.
	AnnotationOverhead = AnnotationPrefix + "overhead"
	// AnnotationResources is the pod's resources (the sum of its
	// containers' limits, as kubelet sends them) as JSON.
	AnnotationResources = AnnotationPrefix + "resources"
)

// Annotation keys containerd's CRI plugin writes on its sandbox spec.
// podsmith writes them as well, with the same meaning, for tools that read
// them (NRI plugins, Kata, crun's and runc's annotation-driven features).
const (
	// CRIContainerType is "sandbox" on a pause spec.
	CRIContainerType = "io.kubernetes.cri.container-type"
	// CRISandboxID is the sandbox ID.
	CRISandboxID = "io.kubernetes.cri.sandbox-id"
	// CRISandboxName is the pod's name (metadata.name).
	CRISandboxName = "io.kubernetes.cri.sandbox-name"
	// CRISandboxNamespace is the pod's namespace.
	CRISandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	// CRISandboxUID is the pod's UID.
	CRISandboxUID = "io.kubernetes.cri.sandbox-uid"
	// CRISandboxLogDirectory is the pod's log directory.
	CRISandboxLogDirectory = "io.kubernetes.cri.sandbox-log-directory"
	// ContainerTypeSandbox is the value of CRIContainerType for a pause.
	ContainerTypeSandbox = "sandbox"
)
