package pod

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Config is a pod's request for a sandbox: the fields of CRI's
// PodSandboxConfig that matter on Linux. Its JSON (and YAML) form uses
// CRI's snake_case field names and enum values, so a crictl pod config file
// decodes into it unchanged (see Decode); enums also accept their
// names ("NODE", "RuntimeDefault", "UDP").
type Config struct {
	Metadata     Metadata          `json:"metadata"`
	Hostname     string            `json:"hostname,omitempty"`
	LogDirectory string            `json:"log_directory,omitempty"`
	DNSConfig    *DNSConfig        `json:"dns_config,omitempty"`
	PortMappings []PortMapping     `json:"port_mappings,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Linux        *LinuxConfig      `json:"linux,omitempty"`
	// RuntimeHandler names the runtime that runs the pause (CRI's
	// RunPodSandboxRequest.runtime_handler): one of the Builder's
	// Options.RuntimeHandlers; empty means its Options.Runtime.
	RuntimeHandler string `json:"runtime_handler,omitempty"`
}

// ShmSizeAnnotation sets a pod's /dev/shm size, a Kubernetes quantity
// ("64Mi", "1.5Gi"), as in CRI-O.
const ShmSizeAnnotation = "io.kubernetes.cri-o.ShmSize"

// Metadata identifies the pod. Name, UID and Namespace are required.
type Metadata struct {
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Attempt   uint32 `json:"attempt,omitempty"`
}

// DNSConfig is the pod's resolv.conf. Nil (or all empty) means the node's
// resolv.conf, without its loopback nameservers unless the pod uses the
// host network.
type DNSConfig struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// PortMapping maps a port of the pod to the node.
type PortMapping struct {
	Protocol      Protocol `json:"protocol,omitempty"`
	ContainerPort int32    `json:"container_port,omitempty"`
	HostPort      int32    `json:"host_port,omitempty"`
	HostIP        string   `json:"host_ip,omitempty"`
}

// LinuxConfig holds the Linux-specific part of the pod's request.
type LinuxConfig struct {
	CgroupParent    string            `json:"cgroup_parent,omitempty"`
	SecurityContext *SecurityContext  `json:"security_context,omitempty"`
	Sysctls         map[string]string `json:"sysctls,omitempty"`
	// Overhead and Resources are recorded (as annotations), not applied:
	// the pause process gets only a minimal CPU weight.
	Overhead  *Resources `json:"overhead,omitempty"`
	Resources *Resources `json:"resources,omitempty"`
}

// SecurityContext is the pod's Linux security context.
type SecurityContext struct {
	NamespaceOptions   *NamespaceOptions `json:"namespace_options,omitempty"`
	SelinuxOptions     *SELinuxOptions   `json:"selinux_options,omitempty"`
	RunAsUser          *Int64Value       `json:"run_as_user,omitempty"`
	RunAsGroup         *Int64Value       `json:"run_as_group,omitempty"`
	ReadonlyRootfs     bool              `json:"readonly_rootfs,omitempty"`
	SupplementalGroups []int64           `json:"supplemental_groups,omitempty"`
	Privileged         bool              `json:"privileged,omitempty"`
	Seccomp            *SecurityProfile  `json:"seccomp,omitempty"`
	// SeccompProfilePath is CRI's deprecated form of Seccomp:
	// "runtime/default", "docker/default", "unconfined" or
	// "localhost/<absolute path>".
	SeccompProfilePath string `json:"seccomp_profile_path,omitempty"`
	// Apparmor is accepted for compatibility with pod configs that set it;
	// podsmith applies no AppArmor profile to the pause process, so only
	// RuntimeDefault and Unconfined are valid.
	Apparmor *SecurityProfile `json:"apparmor,omitempty"`
}

// NamespaceOptions say which namespaces the pod shares with the node.
type NamespaceOptions struct {
	Network NamespaceMode `json:"network,omitempty"`
	Pid     NamespaceMode `json:"pid,omitempty"`
	Ipc     NamespaceMode `json:"ipc,omitempty"`
	// TargetID is for containers' TARGET PID mode; a sandbox has no use
	// for it.
	TargetID string `json:"target_id,omitempty"`
	// UsernsOptions asks for a user namespace: nil or mode NODE is none
	// (the node's), POD is one for the pod, with its mappings.
	UsernsOptions *UserNamespace `json:"userns_options,omitempty"`
}

// UserNamespace is CRI's UserNamespace: the pod's user namespace mode and
// its ID mappings (exactly one of each for mode POD).
type UserNamespace struct {
	Mode NamespaceMode `json:"mode,omitempty"`
	Uids []IDMapping   `json:"uids,omitempty"`
	Gids []IDMapping   `json:"gids,omitempty"`
}

// IDMapping maps Length IDs from ContainerID in the namespace to HostID on
// the node.
type IDMapping struct {
	HostID      uint32 `json:"host_id,omitempty"`
	ContainerID uint32 `json:"container_id,omitempty"`
	Length      uint32 `json:"length,omitempty"`
}

// SELinuxOptions are the SELinux label components of the pod.
type SELinuxOptions struct {
	User  string `json:"user,omitempty"`
	Role  string `json:"role,omitempty"`
	Type  string `json:"type,omitempty"`
	Level string `json:"level,omitempty"`
}

// Int64Value is CRI's wrapper for an optional integer.
type Int64Value struct {
	Value int64 `json:"value"`
}

// SecurityProfile selects a seccomp (or AppArmor) profile.
type SecurityProfile struct {
	ProfileType  ProfileType `json:"profile_type,omitempty"`
	LocalhostRef string      `json:"localhost_ref,omitempty"`
}

// Resources are CRI's LinuxContainerResources.
type Resources struct {
	CPUPeriod              int64             `json:"cpu_period,omitempty"`
	CPUQuota               int64             `json:"cpu_quota,omitempty"`
	CPUShares              int64             `json:"cpu_shares,omitempty"`
	MemoryLimitInBytes     int64             `json:"memory_limit_in_bytes,omitempty"`
	OomScoreAdj            int64             `json:"oom_score_adj,omitempty"`
	CpusetCpus             string            `json:"cpuset_cpus,omitempty"`
	CpusetMems             string            `json:"cpuset_mems,omitempty"`
	HugepageLimits         []HugepageLimit   `json:"hugepage_limits,omitempty"`
	Unified                map[string]string `json:"unified,omitempty"`
	MemorySwapLimitInBytes int64             `json:"memory_swap_limit_in_bytes,omitempty"`
}

// HugepageLimit is a hugetlb limit.
type HugepageLimit struct {
	PageSize string `json:"page_size,omitempty"`
	Limit    uint64 `json:"limit,omitempty"`
}

// enum is the JSON handling shared by CRI's enums: a number, or the
// value's name as a string.
type enum struct {
	what  string
	names []string
}

func (e enum) marshal(v int32) ([]byte, error) { return json.Marshal(v) }

func (e enum) unmarshal(b []byte) (int32, error) {
	var n int32
	if err := json.Unmarshal(b, &n); err == nil {
		if n < 0 || int(n) >= len(e.names) {
			return 0, fmt.Errorf("%s %d is not one of %s", e.what, n, e.list())
		}
		return n, nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, fmt.Errorf("%s must be a number or one of %s", e.what, e.list())
	}
	for i, name := range e.names {
		if strings.EqualFold(s, name) {
			return int32(i), nil
		}
	}
	return 0, fmt.Errorf("%s %q is not one of %s", e.what, s, e.list())
}

func (e enum) list() string {
	parts := make([]string, len(e.names))
	for i, n := range e.names {
		parts[i] = strconv.Itoa(i) + " (" + n + ")"
	}
	return strings.Join(parts, ", ")
}

func (e enum) name(v int32) string {
	if v >= 0 && int(v) < len(e.names) {
		return e.names[v]
	}
	return strconv.Itoa(int(v))
}

// NamespaceMode is CRI's NamespaceMode.
type NamespaceMode int32

// Namespace modes.
const (
	// NamespacePod: the pod has its own namespace, shared by its containers.
	NamespacePod NamespaceMode = 0
	// NamespaceContainer: each container has its own (PID only).
	NamespaceContainer NamespaceMode = 1
	// NamespaceNode: the pod uses the node's namespace.
	NamespaceNode NamespaceMode = 2
	// NamespaceTarget: a container joins another's (not for sandboxes).
	NamespaceTarget NamespaceMode = 3
)

var namespaceModes = enum{"namespace mode", []string{"POD", "CONTAINER", "NODE", "TARGET"}}

func (m NamespaceMode) String() string               { return namespaceModes.name(int32(m)) }
func (m NamespaceMode) MarshalJSON() ([]byte, error) { return namespaceModes.marshal(int32(m)) }

// UnmarshalJSON accepts a number or a mode name.
func (m *NamespaceMode) UnmarshalJSON(b []byte) error {
	v, err := namespaceModes.unmarshal(b)
	*m = NamespaceMode(v)
	return err
}

// Protocol is CRI's port mapping protocol.
type Protocol int32

// Protocols.
const (
	ProtocolTCP  Protocol = 0
	ProtocolUDP  Protocol = 1
	ProtocolSCTP Protocol = 2
)

var protocols = enum{"protocol", []string{"TCP", "UDP", "SCTP"}}

func (p Protocol) String() string               { return protocols.name(int32(p)) }
func (p Protocol) MarshalJSON() ([]byte, error) { return protocols.marshal(int32(p)) }

// UnmarshalJSON accepts a number or a protocol name.
func (p *Protocol) UnmarshalJSON(b []byte) error {
	v, err := protocols.unmarshal(b)
	*p = Protocol(v)
	return err
}

// ProfileType is CRI's SecurityProfile.ProfileType.
type ProfileType int32

// Profile types.
const (
	ProfileRuntimeDefault ProfileType = 0
	ProfileUnconfined     ProfileType = 1
	ProfileLocalhost      ProfileType = 2
)

var profileTypes = enum{"profile type", []string{"RuntimeDefault", "Unconfined", "Localhost"}}

func (p ProfileType) String() string               { return profileTypes.name(int32(p)) }
func (p ProfileType) MarshalJSON() ([]byte, error) { return profileTypes.marshal(int32(p)) }

// UnmarshalJSON accepts a number or a profile type name.
func (p *ProfileType) UnmarshalJSON(b []byte) error {
	v, err := profileTypes.unmarshal(b)
	*p = ProfileType(v)
	return err
}

// Namespaces returns the pod's namespace options (the zero value, every
// namespace the pod's own, when it says none).
func (c *Config) Namespaces() NamespaceOptions {
	if c.Linux != nil && c.Linux.SecurityContext != nil && c.Linux.SecurityContext.NamespaceOptions != nil {
		return *c.Linux.SecurityContext.NamespaceOptions
	}
	return NamespaceOptions{}
}

// HostNetwork reports whether the pod uses the node's network namespace.
func (c *Config) HostNetwork() bool { return c.Namespaces().Network == NamespaceNode }

// HostPID reports whether the pod uses the node's PID namespace.
func (c *Config) HostPID() bool { return c.Namespaces().Pid == NamespaceNode }

// HostIPC reports whether the pod uses the node's IPC namespace.
func (c *Config) HostIPC() bool { return c.Namespaces().Ipc == NamespaceNode }

// Security returns the pod's security context; never nil (an empty one
// when the pod sets none).
func (c *Config) Security() *SecurityContext {
	if c.Linux == nil || c.Linux.SecurityContext == nil {
		return &SecurityContext{}
	}
	return c.Linux.SecurityContext
}

// Privileged reports whether the pod asks to be privileged.
func (c *Config) Privileged() bool { return c.Security().Privileged }

// SandboxName returns the unique name of a pod's sandbox, as kubelet's
// runtimes name it: k8s_<name>_<namespace>_<uid>_<attempt>.
func (m Metadata) SandboxName() string {
	return "k8s_" + m.Name + "_" + m.Namespace + "_" + m.UID + "_" + strconv.FormatUint(uint64(m.Attempt), 10)
}
