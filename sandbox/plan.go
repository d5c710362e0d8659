package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/internal/quantity"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/spec"
)

// plan is a Sandbox being planned or built, and what Build needs of the
// plan beyond it.
type plan struct {
	*Sandbox
	hostNetwork, hostPID, hostIPC, privileged bool
	sysctls                                   map[string]string      // the pod's, normalized
	ifaceSysctls                              bool                   // some name an interface the network adds
	uids, gids                                []specs.LinuxIDMapping // its user namespace's
	resolv, hostnameFile, hosts               []byte
	processLabel, mountLabel                  string
}

// concern computes one concern's part of a plan: its files, its checks
// and its spec options.
type concern func(p *plan, probs *problems) []spec.Opt

// Plan validates cfg and computes what Build would do, with no side effect
// at all: the sandbox it would make, in StatePlanned, with its ID, name,
// paths, cgroup and complete spec (only the IP annotation is added once
// the network has given addresses). Every problem comes back in one
// *ConfigError (ErrInvalidConfig), each with its field path. Each call
// draws a new ID.
func (b *Builder) Plan(cfg *pod.Config) (*Sandbox, error) {
	p, err := b.plan(cfg)
	if err != nil {
		return nil, err
	}
	// The SELinux MCS pair a plan draws is reserved in this process only
	// while a sandbox holds it: a plan alone gives it back (an empty label
	// is none, and a no-op).
	selinux.ReleaseLabel(p.processLabel)
	return p.Sandbox, nil
}

// plan is Plan, keeping the SELinux label reserved for a Build.
func (b *Builder) plan(cfg *pod.Config) (*plan, error) {
	if cfg == nil {
		return nil, &ConfigError{Problems: []*Problem{{Reason: "no config"}}}
	}
	p := b.newPlan(cfg)
	var probs problems
	var opts []spec.Opt
	for _, c := range []concern{
		checkPod(b.opts),
		b.namespaces,
		b.files,
		b.shm,
		b.cgroup,
		b.planSysctls,
		b.security,
		b.userns,
		b.annotations,
	} {
		opts = append(opts, c(p, &probs)...)
	}
	if err := probs.err(); err != nil {
		selinux.ReleaseLabel(p.processLabel)
		return nil, err
	}
	var err error
	if p.Spec, err = spec.New(opts...); err != nil {
		selinux.ReleaseLabel(p.processLabel)
		return nil, &ConfigError{Problems: []*Problem{{Reason: err.Error(), Err: err}}}
	}
	p.ProcessLabel, p.MountLabel = p.processLabel, p.mountLabel
	if p.NoPause {
		p.Spec = nil // checked all the same: the same config is valid in both modes
	}
	return p, nil
}

// newPlan draws the sandbox's ID and computes its name and paths.
func (b *Builder) newPlan(cfg *pod.Config) *plan {
	var raw [idBytes]byte
	_, _ = rand.Read(raw[:]) // crypto/rand does not fail on Linux
	id := hex.EncodeToString(raw[:])
	ns, sc := cfg.Namespaces(), cfg.Security()
	sb := &Sandbox{
		ID:        id,
		Name:      cfg.Metadata.SandboxName(),
		Config:    cfg,
		BundleDir: b.bundleDir(id),
		Created:   time.Now().UTC(),
		State:     StatePlanned,
		b:         b,
	}
	sb.Files = Files{
		ResolvConf: filepath.Join(sb.BundleDir, "resolv.conf"),
		Hostname:   filepath.Join(sb.BundleDir, "hostname"),
		Hosts:      filepath.Join(sb.BundleDir, "hosts"),
		Shm:        filepath.Join(sb.BundleDir, "shm"),
		Rootfs:     filepath.Join(sb.BundleDir, spec.BundleRootfs),
	}
	p := &plan{
		Sandbox:     sb,
		hostNetwork: ns.Network == pod.NamespaceNode,
		hostPID:     ns.Pid == pod.NamespaceNode,
		hostIPC:     ns.Ipc == pod.NamespaceNode,
		privileged:  sc.Privileged,
	}
	if p.hostIPC {
		sb.Files.Shm = "/dev/shm"
	}
	if !p.hostNetwork {
		sb.NetnsPath = filepath.Join(b.opts.NetnsDir, b.netnsName(id))
	}
	switch b.opts.PauseMode {
	case PauseNever:
		sb.NoPause = true
	case PauseForSharedPID:
		sb.NoPause = ns.Pid != pod.NamespacePod
	}
	if sb.NoPause {
		// The pins live in the sandbox's own dir: nobody else's names,
		// and a reboot's stale pin files go with the dir.
		sb.Files.Rootfs = ""
		if !p.hostIPC {
			sb.IPCNSPath = filepath.Join(sb.BundleDir, "ipcns")
		}
		if !p.hostNetwork { // a host-network pod has the node's UTS namespace
			sb.UTSNSPath = filepath.Join(sb.BundleDir, "utsns")
		}
	}
	return p
}

// namespaces: the pod's own, or the node's, for each kind.
func (b *Builder) namespaces(p *plan, probs *problems) []spec.Opt {
	ns := p.Config.Namespaces()
	const f = "linux.security_context.namespace_options."
	if ns.Network != pod.NamespacePod && ns.Network != pod.NamespaceNode {
		probs.addf(f+"network", "%s: a pod's network namespace is POD (0) or NODE (2)", ns.Network)
	}
	if ns.Pid != pod.NamespacePod && ns.Pid != pod.NamespaceContainer && ns.Pid != pod.NamespaceNode {
		probs.addf(f+"pid", "%s: a pod's PID namespace is POD (0), CONTAINER (1) or NODE (2)", ns.Pid)
	}
	if ns.Ipc != pod.NamespacePod && ns.Ipc != pod.NamespaceNode {
		probs.addf(f+"ipc", "%s: a pod's IPC namespace is POD (0) or NODE (2)", ns.Ipc)
	}
	if ns.Pid == pod.NamespacePod && b.opts.PauseMode == PauseNever {
		probs.addf(f+"pid", "POD: containers that share a PID namespace need a pause as its PID 1, and Options.PauseMode is %q", PauseNever)
	}
	var opts []spec.Opt
	if p.hostNetwork {
		opts = append(opts, spec.WithHostNetwork())
	} else {
		opts = append(opts, spec.WithNamespace(specs.NetworkNamespace, p.NetnsPath))
	}
	if p.hostPID {
		opts = append(opts, spec.WithHostPID())
	}
	if p.hostIPC {
		opts = append(opts, spec.WithHostIPC())
	}
	return opts
}

// shm: the size of the pod's /dev/shm tmpfs (none with host IPC).
func (b *Builder) shm(p *plan, probs *problems) []spec.Opt {
	if p.hostIPC {
		return nil
	}
	p.ShmSize = b.opts.ShmSize
	v, ok := p.Config.Annotations[pod.ShmSizeAnnotation]
	if !ok {
		return nil
	}
	field := fmt.Sprintf("annotations[%q]", pod.ShmSizeAnnotation)
	n, err := quantity.Parse(v)
	if err == nil {
		p.ShmSize, err = mounts.ShmSize(n, b.opts.MaxShmSize)
	}
	if err != nil {
		probs.add(field, describe(err), err)
	}
	return nil
}

// cgroup: the pause's cgroup under the pod's parent.
func (b *Builder) cgroup(p *plan, probs *problems) []spec.Opt {
	p.CgroupParent = b.opts.CgroupParent
	if l := p.Config.Linux; l != nil && l.CgroupParent != "" {
		p.CgroupParent = l.CgroupParent
	}
	m := b.opts.CgroupManager
	var err error
	if p.CgroupsPath, err = cgroups.CgroupsPath(m, p.CgroupParent, b.opts.CgroupPrefix, p.ID); err != nil {
		probs.add("linux.cgroup_parent", describe(err), err)
		return nil
	}
	p.CgroupDir, _ = cgroups.Dir(m, p.CgroupParent, b.opts.CgroupPrefix, p.ID) // as valid as the path
	return []spec.Opt{spec.WithCgroupsPath(p.CgroupsPath)}
}

// planSysctls: the node's defaults that apply to the pod, and the pod's
// own on top; only namespaced ones, and none of a namespace the pod shares
// with the node.
func (b *Builder) planSysctls(p *plan, probs *problems) []spec.Opt {
	merged := make(map[string]string, len(b.sysctls))
	for k, v := range b.sysctls {
		if _, err := spec.NormalizeSysctls(map[string]string{k: v}, p.hostNetwork, p.hostIPC); err == nil {
			merged[k] = v
		}
	}
	if l := p.Config.Linux; l != nil {
		own, err := spec.NormalizeSysctls(l.Sysctls, p.hostNetwork, p.hostIPC)
		if err != nil {
			probs.sysctls("linux.sysctls", err)
		}
		maps.Copy(merged, own)
	}
	p.sysctls = merged
	// A sysctl of an interface the network adds (eth0) can be set only
	// once it is there: by a pause's runtime after CNI ADD (the Build
	// does not overlap them then); a pod without a pause sets its sysctls
	// when its netns is made, before, and cannot have one.
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		ifc := spec.SysctlInterface(k)
		if ifc == "" {
			continue
		}
		p.ifaceSysctls = true
		if p.NoPause {
			probs.addf(p.sysctlField(k), "names the interface %q: a pod without a pause sets its sysctls when its netns is made, before the network adds its interfaces", ifc)
		}
	}
	return []spec.Opt{spec.WithSysctls(merged)}
}

// sysctlField is the field path of a merged sysctl (dotted name): the
// pod's own entry, as the pod spelled it, or the node's default.
func (p *plan) sysctlField(name string) string {
	if l := p.Config.Linux; l != nil {
		for k := range l.Sysctls {
			if spec.NormalizeSysctlName(k) == name {
				return fmt.Sprintf("linux.sysctls[%q]", k)
			}
		}
	}
	return "Options.DefaultSysctls"
}

// sysctlsOf returns the pod's sysctls of one namespace, for a pod
// without a pause, whose pins get them (nil for a pod with a pause: its
// runtime sets them from the spec).
func (p *plan) sysctlsOf(typ specs.LinuxNamespaceType) map[string]string {
	if !p.NoPause {
		return nil
	}
	var out map[string]string
	for k, v := range p.sysctls {
		if spec.SysctlNamespace(k) == typ {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// annotations are the spec's: the pod's own, podsmith's and containerd's
// CRI keys.
func (b *Builder) annotations(p *plan, _ *problems) []spec.Opt {
	cfg := p.Config
	a := make(map[string]string, len(cfg.Annotations)+32)
	maps.Copy(a, cfg.Annotations)
	bools := strconv.FormatBool
	a[spec.AnnotationSandboxID] = p.ID
	a[spec.AnnotationSandboxName] = p.Name
	a[spec.AnnotationNamespace] = cfg.Metadata.Namespace
	a[spec.AnnotationKubeName] = cfg.Metadata.Name
	a[spec.AnnotationUID] = cfg.Metadata.UID
	a[spec.AnnotationMetadata] = jsonString(cfg.Metadata)
	a[spec.AnnotationLabels] = jsonString(orEmpty(cfg.Labels))
	a[spec.AnnotationAnnotations] = jsonString(orEmpty(cfg.Annotations))
	a[spec.AnnotationLogDirectory] = cfg.LogDirectory
	a[spec.AnnotationShmPath] = p.Files.Shm
	a[spec.AnnotationResolvPath] = p.Files.ResolvConf
	a[spec.AnnotationHostnamePath] = p.Files.Hostname
	a[spec.AnnotationHostsPath] = p.Files.Hosts
	a[spec.AnnotationHostname] = p.Hostname
	a[spec.AnnotationCgroupParent] = p.CgroupParent
	a[spec.AnnotationCreated] = p.Created.Format(time.RFC3339Nano)
	a[spec.AnnotationPrivileged] = bools(p.privileged)
	a[spec.AnnotationHostNetwork] = bools(p.hostNetwork)
	a[spec.AnnotationHostPID] = bools(p.hostPID)
	a[spec.AnnotationHostIPC] = bools(p.hostIPC)
	if p.NetnsPath != "" {
		a[spec.AnnotationNetnsPath] = p.NetnsPath
	}
	ports := cfg.PortMappings
	if ports == nil {
		ports = []pod.PortMapping{}
	}
	a[spec.AnnotationPortMappings] = jsonString(ports)
	if l := cfg.Linux; l != nil && l.Overhead != nil {
		a[spec.AnnotationOverhead] = jsonString(l.Overhead)
	}
	if l := cfg.Linux; l != nil && l.Resources != nil {
		a[spec.AnnotationResources] = jsonString(l.Resources)
	}
	a[spec.CRIContainerType] = spec.ContainerTypeSandbox
	a[spec.CRISandboxID] = p.ID
	a[spec.CRISandboxName] = cfg.Metadata.Name
	a[spec.CRISandboxNamespace] = cfg.Metadata.Namespace
	a[spec.CRISandboxUID] = cfg.Metadata.UID
	a[spec.CRISandboxLogDirectory] = cfg.LogDirectory
	return []spec.Opt{spec.WithAnnotations(a)}
}
