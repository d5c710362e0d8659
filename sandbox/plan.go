package sandbox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/spec"
)

// Plan is everything Build will do for a config, computed without touching
// the host: the ID, the name, the paths, the cgroup and the complete spec
// (only the IP annotation is added once the network has given addresses).
type Plan struct {
	ID   string
	Name string
	// Config is the pod's request (Build does not modify it).
	Config   *Config
	Hostname string
	// HostNetwork, HostPID and HostIPC: the pod uses the node's namespace.
	HostNetwork, HostPID, HostIPC bool
	Privileged                    bool
	// BundleDir is the OCI bundle: config.json, rootfs, and the files.
	BundleDir string
	// NetnsPath is the pinned network namespace ("" with host network).
	NetnsPath string
	Files     Files
	// ShmSize is the size of the pod's /dev/shm tmpfs (0 with host IPC).
	ShmSize      int64
	CgroupParent string
	// CgroupsPath is the spec's linux.cgroupsPath; CgroupDir the cgroup
	// directory it resolves to under each hierarchy's root.
	CgroupsPath, CgroupDir string
	Created                time.Time
	Spec                   *spec.Spec

	resolv, hostnameFile, hosts []byte
	processLabel, mountLabel    string
}

// Files are the host paths of a sandbox's files.
type Files struct {
	ResolvConf string `json:"resolv_conf"`
	Hostname   string `json:"hostname"`
	Hosts      string `json:"hosts"`
	// Shm is what is bound at /dev/shm: the sandbox's tmpfs, or the node's
	// /dev/shm for a host-IPC pod.
	Shm string `json:"shm"`
	// Rootfs is the bundle's rootfs: a read-only bind of the shared pause
	// rootfs.
	Rootfs string `json:"rootfs"`
}

// Name returns the unique name of a pod's sandbox:
// k8s_<name>_<namespace>_<uid>_<attempt>.
func (m Metadata) SandboxName() string {
	return "k8s_" + m.Name + "_" + m.Namespace + "_" + m.UID + "_" + strconv.FormatUint(uint64(m.Attempt), 10)
}

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// Paths inside the Builder's directories. A sandbox's journal and name
// link start in the run dir (a tmpfs: no disk write on the Build's path)
// and move to the state dir when the journal must record something that
// outlives a reboot (a CNI attachment). See the package doc.
func (b *Builder) bundleDir(id string) string { return filepath.Join(b.opts.RunDir, "sandboxes", id) }

func (b *Builder) volatileJournal(id string) string {
	return filepath.Join(b.opts.RunDir, "journals", id)
}

func (b *Builder) durableJournal(id string) string {
	return filepath.Join(b.opts.StateDir, "journals", id)
}

func nameHash(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:20])
}

func (b *Builder) volatileName(name string) string {
	return filepath.Join(b.opts.RunDir, "names", nameHash(name))
}

func (b *Builder) durableName(name string) string {
	return filepath.Join(b.opts.StateDir, "names", nameHash(name))
}

// netnsName names a sandbox's netns pin: "podsmith-", a tag of this
// Builder (its state dir's) and the ID. The netns dir may be shared with
// other Builders (/run/netns is the default): a Builder sweeps only pins
// with its own tag.
func (b *Builder) netnsName(id string) string { return "podsmith-" + b.tag + "-" + id }

// Plan validates cfg and computes what Build would do, with no side effect
// at all. Every problem comes back in one *ConfigError (ErrInvalidConfig),
// each with its field path. Each call draws a new ID.
func (b *Builder) Plan(cfg *Config) (*Plan, error) {
	p, err := b.plan(cfg)
	if err == nil {
		// The SELinux MCS pair a plan draws is reserved in this process
		// only while a sandbox holds it: a plan alone gives it back.
		releaseLabel(p.processLabel)
	}
	return p, err
}

// plan is Plan, keeping the SELinux label reserved for a Build.
func (b *Builder) plan(cfg *Config) (*Plan, error) {
	if cfg == nil {
		return nil, &ConfigError{Problems: []*Problem{{Reason: "no config"}}}
	}
	id := newID()
	p := &Plan{
		ID:          id,
		Name:        cfg.Metadata.SandboxName(),
		Config:      cfg,
		HostNetwork: cfg.HostNetwork(),
		HostPID:     cfg.HostPID(),
		HostIPC:     cfg.HostIPC(),
		Privileged:  cfg.Privileged(),
		BundleDir:   b.bundleDir(id),
		Created:     time.Now().UTC(),
	}
	p.Files = Files{
		ResolvConf: filepath.Join(p.BundleDir, "resolv.conf"),
		Hostname:   filepath.Join(p.BundleDir, "hostname"),
		Hosts:      filepath.Join(p.BundleDir, "hosts"),
		Shm:        filepath.Join(p.BundleDir, "shm"),
		Rootfs:     filepath.Join(p.BundleDir, spec.BundleRootfs),
	}
	if p.HostIPC {
		p.Files.Shm = "/dev/shm"
	}
	if !p.HostNetwork {
		p.NetnsPath = filepath.Join(b.opts.NetnsDir, b.netnsName(id))
	}

	var probs problems
	probs.metadata(cfg.Metadata)
	probs.logDirectory(cfg.LogDirectory)
	for _, dir := range []string{b.opts.StateDir, b.opts.RunDir, b.opts.NetnsDir} {
		if d := cfg.LogDirectory; d != "" && (d == dir || strings.HasPrefix(d, dir+"/")) {
			probs.addf("log_directory", "%q is inside the Builder's own %s: logs must go elsewhere", truncate(d), dir)
		}
	}
	probs.portMappings(cfg.PortMappings)
	size := probs.keyValues("labels", cfg.Labels) + probs.keyValues("annotations", cfg.Annotations)
	if size > maxMetadataSize {
		probs.addf("annotations", "labels and annotations together are %d bytes, more than %d", size, maxMetadataSize)
	}
	for k := range cfg.Annotations {
		if strings.HasPrefix(k, spec.AnnotationPrefix) {
			probs.addf(fmt.Sprintf("annotations[%q]", truncate(k)), "the prefix %q is reserved for podsmith", spec.AnnotationPrefix)
		}
	}
	b.planNamespaces(cfg, &probs)
	if _, err := cni.BandwidthFromAnnotations(cfg.Annotations); err != nil {
		var be *cni.BandwidthError
		errors.As(err, &be)
		probs.add(fmt.Sprintf("annotations[%q]", be.Annotation), fmt.Sprintf("%q: %s", truncate(be.Value), be.Reason), err)
	}

	hostname, err := dns.Hostname(cfg.Hostname, id, p.HostNetwork, b.opts.NodeHostname)
	if err != nil {
		probs.add("hostname", strings.TrimPrefix(err.Error(), "dns: "), err)
	}
	p.Hostname = hostname
	p.hostnameFile = dns.HostnameFile(hostname)
	p.hosts = dns.Hosts(hostname, nil)

	if c := cfg.DNSConfig; c != nil && !(dns.Config{Servers: c.Servers, Searches: c.Searches, Options: c.Options}).IsZero() {
		p.resolv, err = dns.Render(dns.Config{Servers: c.Servers, Searches: c.Searches, Options: c.Options})
		if err != nil {
			probs.dnsConfig(err)
		}
	} else if p.resolv, err = b.hostResolv.get(p.HostNetwork); err != nil {
		probs.add("dns_config", "none given, and the node's resolv.conf cannot be used: "+err.Error(), err)
	}

	if !p.HostIPC {
		p.ShmSize = b.opts.ShmSize
		if v, ok := cfg.Annotations[ShmSizeAnnotation]; ok {
			field := fmt.Sprintf("annotations[%q]", ShmSizeAnnotation)
			if n, err := parseQuantity(v); err != nil {
				probs.add(field, fmt.Sprintf("%q: %v", truncate(v), err), err)
			} else if p.ShmSize, err = mounts.ShmSize(n, b.opts.MaxShmSize); err != nil {
				probs.add(field, err.Error(), err)
			}
		}
	}

	var linux LinuxConfig
	if cfg.Linux != nil {
		linux = *cfg.Linux
	}
	p.CgroupParent = linux.CgroupParent
	if p.CgroupParent == "" {
		p.CgroupParent = b.opts.CgroupParent
	}
	if err := cgroups.ValidateParent(b.opts.CgroupManager, p.CgroupParent); err != nil {
		probs.add("linux.cgroup_parent", strings.TrimPrefix(err.Error(), "cgroups: "), err)
	} else {
		p.CgroupsPath, _ = cgroups.CgroupsPath(b.opts.CgroupManager, p.CgroupParent, b.opts.CgroupPrefix, id)
		p.CgroupDir, _ = cgroups.Dir(b.opts.CgroupManager, p.CgroupParent, b.opts.CgroupPrefix, id)
	}

	sysctls, err := spec.NormalizeSysctls(linux.Sysctls, p.HostNetwork, p.HostIPC)
	if err != nil {
		probs.sysctls("linux.sysctls", err)
	}
	merged := b.defaultSysctls(p.HostNetwork, p.HostIPC)
	maps.Copy(merged, sysctls)

	sc := cfg.securityContext()
	user, group := uint32(spec.PauseUID), uint32(spec.PauseGID)
	if sc.RunAsUser != nil {
		user = b.checkID(&probs, "linux.security_context.run_as_user.value", sc.RunAsUser.Value)
	}
	if sc.RunAsGroup != nil {
		group = b.checkID(&probs, "linux.security_context.run_as_group.value", sc.RunAsGroup.Value)
	}
	var groups []uint32
	for i, g := range sc.SupplementalGroups {
		groups = append(groups, b.checkID(&probs, fmt.Sprintf("linux.security_context.supplemental_groups[%d]", i), g))
	}
	seccomp := b.seccompProfile(p.Privileged, sc, &probs)
	if sc.Apparmor != nil {
		switch sc.Apparmor.ProfileType {
		case ProfileRuntimeDefault, ProfileUnconfined:
		case ProfileLocalhost:
			probs.addf("linux.security_context.apparmor", "Localhost AppArmor profiles are not supported (podsmith applies none to the pause process)")
		default:
			probs.addf("linux.security_context.apparmor.profile_type", "%s is not a profile type", sc.Apparmor.ProfileType)
		}
	}
	p.processLabel = b.selinuxLabels(p, sc.SelinuxOptions, &probs)

	for _, r := range []struct {
		field string
		res   *Resources
	}{{"linux.overhead", linux.Overhead}, {"linux.resources", linux.Resources}} {
		if r.res != nil && (r.res.CPUShares < 0 || r.res.CPUQuota < -1 || r.res.CPUPeriod < 0 || r.res.MemoryLimitInBytes < 0 ||
			r.res.OomScoreAdj < -1000 || r.res.OomScoreAdj > 1000) {
			probs.addf(r.field, "negative or out-of-range values")
		}
	}

	if err := probs.err(); err != nil {
		releaseLabel(p.processLabel)
		return nil, err
	}

	opts := []spec.Opt{
		spec.WithRoot(spec.BundleRootfs, true),
		spec.WithArgs(b.pauseArgs...),
		spec.WithOCIVersion(b.opts.OCIVersion),
	}
	if p.HostNetwork {
		opts = append(opts, spec.WithHostNetwork())
	} else {
		opts = append(opts, spec.WithNamespace(specs.NetworkNamespace, p.NetnsPath), spec.WithHostname(p.Hostname))
	}
	if p.HostPID {
		opts = append(opts, spec.WithHostPID())
	}
	if p.HostIPC {
		opts = append(opts, spec.WithHostIPC())
	}
	opts = append(opts,
		spec.WithMounts(
			mounts.ShmBind(p.Files.Shm),
			mounts.ReadOnlyBind(p.Files.ResolvConf, "/etc/resolv.conf"),
			mounts.ReadOnlyBind(p.Files.Hostname, "/etc/hostname"),
			mounts.ReadOnlyBind(p.Files.Hosts, "/etc/hosts"),
		),
		spec.WithCgroupsPath(p.CgroupsPath),
		spec.WithSysctls(merged),
		spec.WithOOMScoreAdj(b.oomScore),
		spec.WithUser(user, group, groups...),
		spec.WithSeccomp(seccomp),
		spec.WithSELinuxLabels(p.processLabel, p.mountLabel),
		spec.WithAnnotations(b.annotations(p)),
	)
	if p.Privileged {
		opts = append(opts, spec.WithPrivileged(b.hostCaps))
	}
	if p.Spec, err = spec.New(opts...); err != nil {
		releaseLabel(p.processLabel)
		return nil, &ConfigError{Problems: []*Problem{{Reason: err.Error(), Err: err}}}
	}
	return p, nil
}

// releaseLabel gives an SELinux process label's MCS pair back to
// go-selinux's in-process list of pairs in use.
func releaseLabel(processLabel string) {
	if processLabel != "" {
		selinux.ReleaseLabel(processLabel)
	}
}

func (b *Builder) planNamespaces(cfg *Config, probs *problems) {
	ns := cfg.namespaces()
	const f = "linux.security_context.namespace_options."
	if ns.Network != NamespacePod && ns.Network != NamespaceNode {
		probs.addf(f+"network", "%s: a pod's network namespace is POD (0) or NODE (2)", ns.Network)
	}
	if ns.Pid != NamespacePod && ns.Pid != NamespaceContainer && ns.Pid != NamespaceNode {
		probs.addf(f+"pid", "%s: a pod's PID namespace is POD (0), CONTAINER (1) or NODE (2)", ns.Pid)
	}
	if ns.Ipc != NamespacePod && ns.Ipc != NamespaceNode {
		probs.addf(f+"ipc", "%s: a pod's IPC namespace is POD (0) or NODE (2)", ns.Ipc)
	}
}

func (b *Builder) checkID(probs *problems, field string, v int64) uint32 {
	if v < 0 || v > maxID {
		probs.addf(field, "%d is not a user or group ID (0-%d)", v, maxID)
		return 0
	}
	return uint32(v)
}

// defaultSysctls returns the node's default sysctls that apply to a pod
// (net.* ones not with host network, IPC ones not with host IPC).
func (b *Builder) defaultSysctls(hostNetwork, hostIPC bool) map[string]string {
	out := make(map[string]string, len(b.sysctls))
	for k, v := range b.sysctls {
		if _, err := spec.NormalizeSysctls(map[string]string{k: v}, hostNetwork, hostIPC); err == nil {
			out[k] = v
		}
	}
	return out
}

// seccompProfile resolves the pod's seccomp settings (the seccomp field
// wins over the deprecated seccomp_profile_path, as in containerd).
func (b *Builder) seccompProfile(privileged bool, sc *SecurityContext, probs *problems) *specs.LinuxSeccomp {
	if privileged {
		return nil
	}
	typ, ref, field := b.opts.Seccomp.Unset, "", "linux.security_context.seccomp"
	switch {
	case sc.Seccomp != nil:
		typ, ref = sc.Seccomp.ProfileType, sc.Seccomp.LocalhostRef
	case sc.SeccompProfilePath != "":
		field = "linux.security_context.seccomp_profile_path"
		switch path := sc.SeccompProfilePath; {
		case path == "runtime/default" || path == "docker/default":
			typ = ProfileRuntimeDefault
		case path == "unconfined":
			typ = ProfileUnconfined
		case strings.HasPrefix(path, "localhost/"):
			typ, ref = ProfileLocalhost, strings.TrimPrefix(path, "localhost/")
		default:
			probs.addf(field, "%q is not runtime/default, docker/default, unconfined or localhost/<path>", truncate(path))
			return nil
		}
	}
	switch typ {
	case ProfileRuntimeDefault:
		return b.opts.Seccomp.RuntimeDefault
	case ProfileUnconfined:
		return nil
	case ProfileLocalhost:
		if field == "linux.security_context.seccomp" {
			field += ".localhost_ref"
		}
		prof, err := spec.LoadSeccompProfile(ref)
		if err != nil {
			probs.add(field, strings.TrimPrefix(err.Error(), "spec: "), err)
		}
		return prof
	}
	probs.addf(field+".profile_type", "%s is not a profile type", typ)
	return nil
}

// selinuxLabels computes the pause's process label and the sandbox's mount
// label (stored in p). They are empty unless Options.SELinux is set and the
// host enforces SELinux, and for privileged, host-PID and host-IPC pods.
func (b *Builder) selinuxLabels(p *Plan, o *SELinuxOptions, probs *problems) string {
	if o != nil {
		for name, v := range map[string]string{"user": o.User, "role": o.Role, "type": o.Type, "level": o.Level} {
			if strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
				probs.addf("linux.security_context.selinux_options."+name, "contains whitespace or a control character")
			}
		}
	}
	if !b.opts.SELinux || !selinux.GetEnabled() || p.Privileged || p.HostPID || p.HostIPC {
		return ""
	}
	var opts []string
	if o != nil {
		for _, kv := range [][2]string{{"user", o.User}, {"role", o.Role}, {"type", o.Type}, {"level", o.Level}} {
			if kv[1] != "" {
				opts = append(opts, kv[0]+":"+kv[1])
			}
		}
	}
	process, mount, err := label.InitLabels(opts)
	if err != nil {
		probs.add("linux.security_context.selinux_options", err.Error(), err)
		return ""
	}
	p.mountLabel = mount
	return process
}

// annotations are the spec's annotations: the pod's own, podsmith's and
// containerd's CRI keys.
func (b *Builder) annotations(p *Plan) map[string]string {
	cfg := p.Config
	a := make(map[string]string, len(cfg.Annotations)+32)
	maps.Copy(a, cfg.Annotations)
	js := func(v any) string {
		out, _ := json.Marshal(v) // plain data: cannot fail
		return string(out)
	}
	bools := strconv.FormatBool
	a[spec.AnnotationSandboxID] = p.ID
	a[spec.AnnotationSandboxName] = p.Name
	a[spec.AnnotationNamespace] = cfg.Metadata.Namespace
	a[spec.AnnotationKubeName] = cfg.Metadata.Name
	a[spec.AnnotationUID] = cfg.Metadata.UID
	a[spec.AnnotationMetadata] = js(cfg.Metadata)
	a[spec.AnnotationLabels] = js(orEmpty(cfg.Labels))
	a[spec.AnnotationAnnotations] = js(orEmpty(cfg.Annotations))
	a[spec.AnnotationLogDirectory] = cfg.LogDirectory
	a[spec.AnnotationShmPath] = p.Files.Shm
	a[spec.AnnotationResolvPath] = p.Files.ResolvConf
	a[spec.AnnotationHostnamePath] = p.Files.Hostname
	a[spec.AnnotationHostsPath] = p.Files.Hosts
	a[spec.AnnotationHostname] = p.Hostname
	a[spec.AnnotationCgroupParent] = p.CgroupParent
	a[spec.AnnotationCreated] = p.Created.Format(time.RFC3339Nano)
	a[spec.AnnotationPrivileged] = bools(p.Privileged)
	a[spec.AnnotationHostNetwork] = bools(p.HostNetwork)
	a[spec.AnnotationHostPID] = bools(p.HostPID)
	a[spec.AnnotationHostIPC] = bools(p.HostIPC)
	if p.NetnsPath != "" {
		a[spec.AnnotationNetnsPath] = p.NetnsPath
	}
	a[spec.AnnotationPortMappings] = js(orEmptySlice(cfg.PortMappings))
	if cfg.Linux != nil && cfg.Linux.Overhead != nil {
		a[spec.AnnotationOverhead] = js(cfg.Linux.Overhead)
	}
	if cfg.Linux != nil && cfg.Linux.Resources != nil {
		a[spec.AnnotationResources] = js(cfg.Linux.Resources)
	}
	a[spec.CRIContainerType] = spec.ContainerTypeSandbox
	a[spec.CRISandboxID] = p.ID
	a[spec.CRISandboxName] = cfg.Metadata.Name
	a[spec.CRISandboxNamespace] = cfg.Metadata.Namespace
	a[spec.CRISandboxUID] = cfg.Metadata.UID
	a[spec.CRISandboxLogDirectory] = cfg.LogDirectory
	return a
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func orEmptySlice(s []PortMapping) []PortMapping {
	if s == nil {
		return []PortMapping{}
	}
	return s
}
