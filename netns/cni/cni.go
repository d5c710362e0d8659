package cni

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/internal/owndir"
	"github.com/podsmith/podsmith/netns"
)

// Defaults of Options.
const (
	DefaultConfDir    = "/etc/cni/net.d"
	DefaultCacheDir   = "/var/lib/podsmith/cni"
	DefaultIfName     = "eth0"
	DefaultAddTimeout = 4 * time.Minute
	DefaultDelTimeout = 2 * time.Minute
)

// DefaultBinDirs are where plugins are looked for: the upstream location
// and Debian's.
var DefaultBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}

// Options configure a Network. The zero value of every field means its
// default.
type Options struct {
	// ConfDir holds the network configurations; default /etc/cni/net.d.
	ConfDir string
	// BinDirs are searched for plugins; default DefaultBinDirs.
	BinDirs []string
	// CacheDir is libcni's cache of results (for CHECK, DEL and GC);
	// default /var/lib/podsmith/cni. It must belong to one sandbox.Builder
	// (one state dir) alone: GC deletes every cached attachment that is
	// not in the valid list it is given, so two Builders sharing a cache
	// dir would collect each other's pods. Give each its own when a node
	// runs several.
	CacheDir string
	// NetworkName pins the network by name; empty means the conf dir's
	// lexically first configuration, as kubelet, CRI-O and containerd
	// pick it.
	NetworkName string
	// IfName is the pod's interface; default eth0.
	IfName string
	// AddTimeout bounds an ADD (and a CHECK), DelTimeout a DEL: CNI plugins
	// can be slow. Defaults 4 and 2 minutes.
	AddTimeout, DelTimeout time.Duration
	// AllowNoConfig makes Prepare return ErrLoopbackOnly, not an error,
	// when the conf dir holds no configuration at all, so a pod gets its
	// loopback interface only: for tools that run with or without a
	// network (podctl). A node meant to have a network leaves it false and
	// fails instead.
	AllowNoConfig bool
	// Exec runs plugins; nil means libcni's own (fork and exec; a plugin's
	// stderr goes into its error). Wrap it to measure or trace plugin
	// calls.
	Exec invoke.Exec
}

// Network attaches pods to a CNI network. It is safe for concurrent use.
type Network struct {
	opts Options
	cni  *libcni.CNIConfig
}

// New returns a Network for opts. It reads nothing yet: the configuration
// is loaded by each Prepare (so a changed conf dir is seen) or by Load.
func New(opts Options) (*Network, error) {
	if opts.ConfDir == "" {
		opts.ConfDir = DefaultConfDir
	}
	if len(opts.BinDirs) == 0 {
		opts.BinDirs = DefaultBinDirs
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir
	}
	if opts.IfName == "" {
		opts.IfName = DefaultIfName
	}
	if opts.AddTimeout <= 0 {
		opts.AddTimeout = DefaultAddTimeout
	}
	if opts.DelTimeout <= 0 {
		opts.DelTimeout = DefaultDelTimeout
	}
	for _, d := range append([]string{opts.ConfDir, opts.CacheDir}, opts.BinDirs...) {
		if !filepath.IsAbs(d) {
			return nil, &ConfigError{File: d, Err: errors.New("not an absolute path")}
		}
	}
	if err := netns.ValidateName(opts.IfName); err != nil || len(opts.IfName) > 15 {
		return nil, &ConfigError{File: opts.ConfDir, Err: fmt.Errorf("interface name %q is not a Linux interface name", opts.IfName)}
	}
	if opts.Exec == nil {
		// What libcni would make on first use, made now: libcni sets it
		// lazily without a lock, a data race when ADDs run concurrently.
		// A plugin's stderr is kept in its errors, never written to ours.
		opts.Exec = &invoke.DefaultExec{RawExec: &invoke.RawExec{}, PluginDecoder: version.PluginDecoder{}}
	}
	return &Network{opts: opts, cni: libcni.NewCNIConfigWithCacheDir(opts.BinDirs, opts.CacheDir, opts.Exec)}, nil
}

// Options returns the Network's options, defaults filled in.
func (n *Network) Options() Options { return n.opts }

// Attachment is what a Network needs to attach or detach one pod. The
// caller fills the pod's fields; Prepare fills Network, IfName and Config.
// It is JSON, so a journal can keep it.
type Attachment struct {
	SandboxID    string        `json:"sandbox_id"`
	NetnsPath    string        `json:"netns_path,omitempty"`
	PodName      string        `json:"pod_name"`
	PodNamespace string        `json:"pod_namespace"`
	PodUID       string        `json:"pod_uid"`
	PortMappings []PortMapping `json:"port_mappings,omitempty"`
	// Annotations are the pod's; Prepare reads the bandwidth ones.
	Annotations map[string]string `json:"annotations,omitempty"`
	DNS         *DNS              `json:"dns,omitempty"`
	// CgroupPath is the pod's cgroup parent, for plugins that account
	// network use per pod.
	CgroupPath string `json:"cgroup_path,omitempty"`

	// Network is the network's name, IfName the pod's interface, and
	// Config the whole network configuration (a self-contained conflist),
	// as Prepare found them.
	Network string          `json:"network,omitempty"`
	IfName  string          `json:"if_name,omitempty"`
	Config  json.RawMessage `json:"config,omitempty"`
}

// PortMapping is a host port of the pod: CNI's portMappings capability.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp, udp or sctp
	HostIP        string `json:"hostIP,omitempty"`
}

// DNS is CNI's dns capability.
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// Result is what an ADD gave the pod.
type Result struct {
	// IPs are the addresses on the pod's interface, IPv4 first (the
	// primary), in the plugin's order otherwise.
	IPs []netip.Addr
	// Raw is the plugin chain's result, converted to CNI 1.0.
	Raw *types100.Result
}

// Load loads and checks the network configuration now, for callers that
// want to fail early (at start-up, say).
func (n *Network) Load() (*libcni.NetworkConfigList, error) { return n.load() }

// load returns the configuration to use: the file holding the pinned
// network, or else the lexically first file that loads.
func (n *Network) load() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(n.opts.ConfDir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, &ConfigError{File: n.opts.ConfDir, Err: err}
	}
	if len(files) == 0 {
		return nil, &ConfigError{File: n.opts.ConfDir, Err: ErrNoConfig}
	}
	sort.Strings(files)
	var firstErr error
	for _, f := range files {
		list, err := loadFile(f)
		if err != nil {
			if n.opts.NetworkName == "" {
				return nil, err // the first file is the pod network: it must load
			}
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		if n.opts.NetworkName == "" || list.Name == n.opts.NetworkName {
			return list, nil
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, &ConfigError{File: n.opts.ConfDir, Err: fmt.Errorf("%w named %q", ErrNoConfig, n.opts.NetworkName)}
}

func loadFile(f string) (*libcni.NetworkConfigList, error) {
	var list *libcni.NetworkConfigList
	var err error
	if filepath.Ext(f) == ".conflist" {
		list, err = libcni.ConfListFromFile(f)
	} else {
		var conf *libcni.NetworkConfig
		if conf, err = libcni.ConfFromFile(f); err == nil {
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		return nil, &ConfigError{File: f, Err: err}
	}
	if len(list.Plugins) == 0 {
		return nil, &ConfigError{File: f, Err: errors.New("no plugins")}
	}
	return list, nil
}

// Prepare loads the configuration, checks that every plugin it names is
// installed and that the pod's bandwidth annotations are valid, and
// records in a what Attach and Detach need: the network's name, the
// interface and the configuration itself. It changes nothing on the host:
// what it refuses needs no DEL.
func (n *Network) Prepare(_ context.Context, a *Attachment) error {
	if _, err := BandwidthFromAnnotations(a.Annotations); err != nil {
		return err
	}
	// libcni writes its cache below CacheDir, following links: a symlink
	// planted there would take it elsewhere.
	for _, d := range []string{n.opts.CacheDir, filepath.Join(n.opts.CacheDir, "results")} {
		if err := owndir.Make(d, 0o700); err != nil {
			return &ConfigError{File: d, Err: err}
		}
	}
	list, err := n.load()
	if n.opts.AllowNoConfig && n.opts.NetworkName == "" && errors.Is(err, ErrNoConfig) {
		return ErrLoopbackOnly
	}
	if err != nil {
		return err
	}
	for _, p := range list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, n.opts.BinDirs); err != nil {
			return &ConfigError{File: "network " + list.Name, Err: fmt.Errorf("plugin %q is not installed: %w", p.Network.Type, err)}
		}
	}
	a.Network, a.IfName, a.Config = list.Name, n.opts.IfName, list.Bytes
	return nil
}

// list returns the configuration recorded in a, or the current one for an
// Attachment that was never prepared.
func (n *Network) list(a *Attachment) (*libcni.NetworkConfigList, error) {
	if len(a.Config) == 0 {
		return n.load()
	}
	list, err := libcni.ConfListFromBytes(a.Config)
	if err != nil {
		return nil, &ConfigError{File: "(the configuration recorded for sandbox " + a.SandboxID + ")", Err: err}
	}
	return list, nil
}

func (n *Network) runtimeConf(a *Attachment, netnsPath string) (*libcni.RuntimeConf, error) {
	bw, err := BandwidthFromAnnotations(a.Annotations)
	if err != nil {
		return nil, err
	}
	caps := map[string]any{}
	if len(a.PortMappings) > 0 {
		caps["portMappings"] = a.PortMappings
	}
	if bw != nil {
		caps["bandwidth"] = bw
	}
	if a.DNS != nil {
		caps["dns"] = a.DNS
	}
	if a.CgroupPath != "" {
		caps["cgroupPath"] = a.CgroupPath
	}
	return &libcni.RuntimeConf{
		ContainerID: a.SandboxID,
		NetNS:       netnsPath,
		IfName:      cmp.Or(a.IfName, n.opts.IfName),
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", a.PodNamespace},
			{"K8S_POD_NAME", a.PodName},
			{"K8S_POD_INFRA_CONTAINER_ID", a.SandboxID},
			{"K8S_POD_UID", a.PodUID},
		},
		CapabilityArgs: caps,
	}, nil
}

// Attach runs ADD. It prepares a first if Prepare was not called.
func (n *Network) Attach(ctx context.Context, a *Attachment) (*Result, error) {
	if len(a.Config) == 0 {
		if err := n.Prepare(ctx, a); err != nil {
			return nil, err
		}
	}
	list, err := n.list(a)
	if err != nil {
		return nil, err
	}
	rt, err := n.runtimeConf(a, a.NetnsPath)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.AddTimeout)
	defer cancel()
	raw, err := n.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		return nil, &Error{Op: "ADD", Network: list.Name, SandboxID: a.SandboxID, Err: timeoutErr(ctx, err)}
	}
	res, err := types100.NewResultFromResult(raw)
	if err != nil {
		return nil, &Error{Op: "ADD", Network: list.Name, SandboxID: a.SandboxID, Err: fmt.Errorf("result: %w", err)}
	}
	ips := podIPs(res, rt.IfName)
	if len(ips) == 0 {
		return nil, &Error{Op: "ADD", Network: list.Name, SandboxID: a.SandboxID, Err: fmt.Errorf("%w %s", ErrNoIP, rt.IfName)}
	}
	return &Result{IPs: ips, Raw: res}, nil
}

// podIPs returns the addresses of the pod's interface in a result, IPv4
// first.
func podIPs(res *types100.Result, ifName string) []netip.Addr {
	var ips []netip.Addr
	for _, ipc := range res.IPs {
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(res.Interfaces) || res.Interfaces[i].Name != ifName || res.Interfaces[i].Sandbox == "" {
				continue
			}
		} else if len(res.Interfaces) > 0 {
			continue // the result says where its interfaces are: this one is not the pod's
		}
		if ip, ok := netip.AddrFromSlice(ipc.Address.IP); ok {
			ips = append(ips, ip.Unmap())
		}
	}
	slices.SortStableFunc(ips, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		}
		return 1
	})
	return ips
}

// liveNetns returns path if a network namespace is pinned there, else ""
// (the pin is gone, as after a reboot: a DEL then skips the namespace but
// still releases the addresses).
func liveNetns(path string) string {
	if path == "" {
		return ""
	}
	if _, err := netns.Open(path); err != nil {
		return ""
	}
	return path
}

// Detach runs DEL with the configuration Prepare recorded. It runs on a
// context detached from ctx's cancellation, bounded by DelTimeout or by
// ctx's deadline if that comes first (the sandbox Builder passes its undo
// timeout so). A DEL of what is not attached succeeds (CNI's DEL is
// idempotent).
func (n *Network) Detach(ctx context.Context, a *Attachment) error {
	list, err := n.list(a)
	if err != nil {
		return err
	}
	rt, err := n.runtimeConf(a, liveNetns(a.NetnsPath))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(n.opts.DelTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	if err := n.del(ctx, list, rt); err != nil {
		return &Error{Op: "DEL", Network: list.Name, SandboxID: a.SandboxID, Err: timeoutErr(ctx, err)}
	}
	return nil
}

// del runs DEL on the whole chain. libcni stops at the first plugin that
// fails; then every plugin is deleted on its own, so that what the others
// hold (an address, a port mapping) is released even when one plugin
// cannot be run, and the errors of those that failed are returned. Each
// plugin gets the ADD's result as its prevResult (libcni drops its cache
// after every successful DEL: it is put back for the next plugin), and
// the cache stays when a plugin failed, for the retry.
func (n *Network) del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	cache := filepath.Join(n.opts.CacheDir, "results", list.Name+"-"+rt.ContainerID+"-"+rt.IfName)
	cached, _ := os.ReadFile(cache)
	err := n.cni.DelNetworkList(ctx, list, rt)
	if err == nil || len(list.Plugins) == 1 || ctx.Err() != nil {
		return err
	}
	var errs []error
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		if cached != nil {
			// Should the cache not come back (a full disk), the plugin's
			// DEL runs without prevResult, as a DEL must be able to; its
			// own failure, if any, is reported.
			_ = restoreCache(cache, cached)
		}
		one := &libcni.NetworkConfigList{
			Name: list.Name, CNIVersion: list.CNIVersion, DisableCheck: list.DisableCheck, DisableGC: list.DisableGC,
			Plugins: list.Plugins[i : i+1], Bytes: list.Bytes,
		}
		if err := n.cni.DelNetworkList(ctx, one, rt); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 && cached != nil {
		if err := restoreCache(cache, cached); err != nil {
			errs = append(errs, fmt.Errorf("keep the cached result for a retry: %w", err))
		}
	} else if len(errs) == 0 {
		_ = os.Remove(cache)
	}
	return errors.Join(errs...)
}

// restoreCache puts back libcni's cached result at path, which libcni
// removes after every DEL that succeeds. A file still there holds the same
// bytes and is left alone (on a full disk a rewrite could only tear it). A
// write that fails (ENOSPC) leaves no half result behind for the next
// plugin or the retry: libcni would drop it, and with it the prevResult.
func restoreCache(path string, data []byte) error {
	err := atomicfile.CreateNew(path, data, atomicfile.Options{Perm: 0o600})
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}

// Check runs CHECK on a live attachment.
func (n *Network) Check(ctx context.Context, a *Attachment) error {
	list, err := n.list(a)
	if err != nil {
		return err
	}
	rt, err := n.runtimeConf(a, a.NetnsPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.AddTimeout)
	defer cancel()
	if err := n.cni.CheckNetworkList(ctx, list, rt); err != nil {
		return &Error{Op: "CHECK", Network: list.Name, SandboxID: a.SandboxID, Err: timeoutErr(ctx, err)}
	}
	return nil
}

// GC deletes the current network's attachments in libcni's cache that do
// not belong to one of the valid sandbox IDs, and asks plugins that support
// it (CNI 1.1) to collect theirs.
func (n *Network) GC(ctx context.Context, valid []string) error {
	list, err := n.load()
	if err != nil {
		return err
	}
	args := &libcni.GCArgs{}
	for _, id := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: id, IfName: n.opts.IfName})
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.DelTimeout)
	defer cancel()
	if err := n.cni.GCNetworkList(ctx, list, args); err != nil {
		return &Error{Op: "GC", Network: list.Name, Err: timeoutErr(ctx, err)}
	}
	return nil
}

// timeoutErr adds the context's error to a plugin error caused by it (a
// plugin killed at the deadline reports only "signal: killed").
func timeoutErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", err, cerr)
	}
	return err
}
