package cni

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/podsmith/podsmith/internal/owndir"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/sandbox"
)

// Defaults of Options.
const (
	DefaultConfDir    = "/etc/cni/net.d"
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
	// CacheDir is libcni's cache of results (for CHECK, DEL and GC). It
	// must belong to one sandbox.Builder (one state dir) alone: GC deletes
	// every cached attachment that is not in the valid list it is given.
	// Default: the Builder's own directory for its network
	// (NetworkAttachment.Dir, StateDir/network), which is what it is for.
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
	// AllowNoConfig makes Prepare return sandbox.ErrNoNetwork, not an
	// error, when the conf dir holds no configuration at all, so a pod
	// gets its loopback interface only: for tools that run with or without
	// a network (podctl). A node meant to have a network leaves it false
	// and fails instead.
	AllowNoConfig bool
	// Exec runs plugins; nil means libcni's own (fork and exec; a plugin's
	// stderr goes into its error). Wrap it to measure or trace plugin
	// calls.
	Exec invoke.Exec
}

// Network attaches pods to a CNI network: it implements
// sandbox.NetworkCollector. It is safe for concurrent use.
type Network struct {
	opts Options
}

var _ sandbox.NetworkCollector = (*Network)(nil)

// New returns a Network for opts. It reads nothing yet: the configuration
// is loaded by each Prepare (so a changed conf dir is seen).
func New(opts Options) (*Network, error) {
	opts.ConfDir = cmp.Or(opts.ConfDir, DefaultConfDir)
	if len(opts.BinDirs) == 0 {
		opts.BinDirs = DefaultBinDirs
	}
	opts.IfName = cmp.Or(opts.IfName, DefaultIfName)
	if opts.AddTimeout <= 0 {
		opts.AddTimeout = DefaultAddTimeout
	}
	if opts.DelTimeout <= 0 {
		opts.DelTimeout = DefaultDelTimeout
	}
	for _, d := range append([]string{opts.ConfDir}, opts.BinDirs...) {
		if !filepath.IsAbs(d) {
			return nil, &ConfigError{File: d, Err: errors.New("not an absolute path")}
		}
	}
	if opts.CacheDir != "" && !filepath.IsAbs(opts.CacheDir) {
		return nil, &ConfigError{File: opts.CacheDir, Err: errors.New("not an absolute path")}
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
	return &Network{opts: opts}, nil
}

// Options returns the Network's options, defaults filled in.
func (n *Network) Options() Options { return n.opts }

// state is what a Network records of an attachment (its
// NetworkAttachment.State): the network's name, the pod's interface and
// the whole network configuration, as Prepare found them.
type state struct {
	Network string          `json:"network"`
	IfName  string          `json:"if_name"`
	Config  json.RawMessage `json:"config"`
}

// cacheDir returns libcni's cache dir for dir (a Builder's directory for
// its network): Options.CacheDir if set, else dir. An empty or relative
// one is refused: libcni would use its own default, /var/lib/cni, the
// cache of the node's other runtimes, where a GC would collect their pods.
func (n *Network) cacheDir(dir string) (string, error) {
	cache := cmp.Or(n.opts.CacheDir, dir)
	if cache == "" || !filepath.IsAbs(cache) {
		return "", &ConfigError{File: cmp.Or(cache, "(no cache dir)"), Err: errors.New("no usable cache dir: give Options.CacheDir, or the attachment its Builder's Dir (an absolute path)")}
	}
	return cache, nil
}

// libcni returns libcni's client with the cache dir of dir (see cacheDir).
func (n *Network) libcni(dir string) (*libcni.CNIConfig, error) {
	cache, err := n.cacheDir(dir)
	if err != nil {
		return nil, err
	}
	return libcni.NewCNIConfigWithCacheDir(n.opts.BinDirs, cache, n.opts.Exec), nil
}

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
// records in a.State what Attach, Detach and Check need: the network's
// name, the interface and the configuration itself. It changes nothing on
// the host: what it refuses needs no DEL.
func (n *Network) Prepare(_ context.Context, a *sandbox.NetworkAttachment) error {
	if _, err := BandwidthFromAnnotations(a.Annotations); err != nil {
		return err
	}
	list, err := n.load()
	if n.opts.AllowNoConfig && n.opts.NetworkName == "" && errors.Is(err, ErrNoConfig) {
		return fmt.Errorf("cni: %w", sandbox.ErrNoNetwork)
	}
	if err != nil {
		return err
	}
	for _, p := range list.Plugins {
		if _, err := n.opts.Exec.FindInPath(p.Network.Type, n.opts.BinDirs); err != nil {
			return &ConfigError{File: "network " + list.Name, Err: fmt.Errorf("plugin %q is not installed: %w", p.Network.Type, err)}
		}
	}
	// libcni writes its cache below the cache dir, following links: a
	// symlink planted there would take it elsewhere.
	cache, err := n.cacheDir(a.Dir)
	if err != nil {
		return err
	}
	for _, d := range []string{cache, filepath.Join(cache, "results")} {
		if err := owndir.Make(d, 0o700); err != nil {
			return &ConfigError{File: d, Err: err}
		}
	}
	a.State, err = json.Marshal(state{Network: list.Name, IfName: n.opts.IfName, Config: list.Bytes})
	return err
}

// attachment returns what a Prepare recorded: the configuration, and the
// runtime configuration of the pod with netnsPath (live or not).
func (n *Network) attachment(a *sandbox.NetworkAttachment, netnsPath string) (*libcni.NetworkConfigList, *libcni.RuntimeConf, error) {
	var st state
	if len(a.State) == 0 {
		return nil, nil, &ConfigError{File: "(the state recorded for sandbox " + a.SandboxID + ")", Err: errors.New("not a prepared attachment: no state")}
	}
	if err := json.Unmarshal(a.State, &st); err != nil {
		return nil, nil, &ConfigError{File: "(the state recorded for sandbox " + a.SandboxID + ")", Err: fmt.Errorf("not a prepared attachment: %w", err)}
	}
	if len(st.Config) == 0 {
		return nil, nil, &ConfigError{File: "(the state recorded for sandbox " + a.SandboxID + ")", Err: errors.New("not a prepared attachment: no configuration")}
	}
	list, err := libcni.ConfListFromBytes(st.Config)
	if err != nil {
		return nil, nil, &ConfigError{File: "(the configuration recorded for sandbox " + a.SandboxID + ")", Err: err}
	}
	bw, err := BandwidthFromAnnotations(a.Annotations)
	if err != nil {
		return nil, nil, err
	}
	caps := map[string]any{}
	if len(a.PortMappings) > 0 {
		ports := make([]map[string]any, 0, len(a.PortMappings))
		for _, pm := range a.PortMappings {
			p := map[string]any{"hostPort": pm.HostPort, "containerPort": pm.ContainerPort, "protocol": strings.ToLower(pm.Protocol.String())}
			if pm.HostIP != "" {
				p["hostIP"] = pm.HostIP
			}
			ports = append(ports, p)
		}
		caps["portMappings"] = ports
	}
	if bw != nil {
		caps["bandwidth"] = bw
	}
	if d := a.DNS; d != nil {
		caps["dns"] = map[string][]string{"servers": d.Servers, "searches": d.Searches, "options": d.Options}
	}
	if a.CgroupParent != "" {
		caps["cgroupPath"] = a.CgroupParent
	}
	return list, &libcni.RuntimeConf{
		ContainerID: a.SandboxID,
		NetNS:       netnsPath,
		IfName:      cmp.Or(st.IfName, n.opts.IfName),
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", a.Pod.Namespace},
			{"K8S_POD_NAME", a.Pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", a.SandboxID},
			{"K8S_POD_UID", a.Pod.UID},
		},
		CapabilityArgs: caps,
	}, nil
}

// Attach runs ADD with what Prepare recorded and returns the addresses of
// the pod's interface, IPv4 first.
func (n *Network) Attach(ctx context.Context, a *sandbox.NetworkAttachment) ([]netip.Addr, error) {
	list, rt, err := n.attachment(a, a.NetnsPath)
	if err != nil {
		return nil, err
	}
	c, err := n.libcni(a.Dir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.AddTimeout)
	defer cancel()
	raw, err := c.AddNetworkList(ctx, list, rt)
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
	return ips, nil
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
//
// An ADD that did not finish (libcni cached no result) may have left
// processes running: the plugins of a caller that died mid-ADD, the IPAM
// plugin of one killed at its deadline. Detach kills them (every process
// CNI started for the sandbox has its ID in CNI_CONTAINERID) and waits for
// them to exit before its DEL, which could not release what they take
// after it. A Detach of a finished ADD reads no process's environment.
//
// libcni stops a chain's DEL at the first plugin that fails; then every
// plugin is deleted on its own, each given the ADD's cached result as its
// prevResult, so what the others hold (an address, a port mapping) is
// released even when one cannot be run, and the errors of those that
// failed are returned. libcni's cache entry then stays (libcni drops it
// only after a whole chain's DEL): the retry has it, and a CollectNetwork
// removes it once the sandbox is gone.
func (n *Network) Detach(ctx context.Context, a *sandbox.NetworkAttachment) error {
	live := liveNetns(a.NetnsPath)
	list, rt, err := n.attachment(a, live)
	if err != nil {
		return err
	}
	c, err := n.libcni(a.Dir)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(n.opts.DelTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	// libcni caches a result once a whole chain's ADD has succeeded. With
	// none, the ADD may not have ended: processes it started may still
	// run, and allocate after this DEL what nothing would release.
	// A failure to stop them does not keep the DEL from running: what it
	// releases now is released, and the error says what may come after.
	var serr error
	cached, _ := c.GetNetworkListCachedResult(list, rt)
	if cached == nil {
		if err := stopStragglers(ctx, rt.ContainerID); err != nil {
			serr = fmt.Errorf("stopping what an unfinished ADD left running: %w", err)
		}
	}
	// A netns unpinned just before (as a Stop does, once the pause is
	// dead) takes the pod's veth with it a little later, where the bridge
	// plugin would delete it itself (15 ms of synchronous kernel work):
	// note the host's side of the pair, from the ADD's cached result, to
	// wait for it to go.
	var veths []string
	if live == "" && a.NetnsPath != "" {
		veths = hostInterfaces(cached)
	}
	err = c.DelNetworkList(ctx, list, rt)
	if err != nil && len(list.Plugins) > 1 && ctx.Err() == nil {
		err = n.delEach(ctx, c, list, rt)
	}
	if err = errors.Join(serr, err); err != nil {
		return &Error{Op: "DEL", Network: list.Name, SandboxID: a.SandboxID, Err: timeoutErr(ctx, err)}
	}
	if err := waitGone(ctx, veths); err != nil {
		return &Error{Op: "DEL", Network: list.Name, SandboxID: a.SandboxID, Err: fmt.Errorf("the pod's interfaces %v outlived its network namespace: %w", veths, err)}
	}
	return nil
}

// hostInterfaces returns the host's side of the pod's interfaces, from
// the ADD's cached result (none if there is none).
func hostInterfaces(cached types.Result) []string {
	if cached == nil {
		return nil
	}
	res, err := types100.NewResultFromResult(cached)
	if err != nil {
		return nil
	}
	var names []string
	for _, i := range res.Interfaces {
		if i != nil && i.Sandbox == "" {
			names = append(names, i.Name)
		}
	}
	return hostVeths(names)
}

// delEach runs DEL on each plugin of the chain, last first, each with the
// chain's cached result as its prevResult, and joins the errors of those
// that failed. It builds each plugin's configuration as libcni does (name,
// cniVersion, prevResult, and the runtime configuration of the
// capabilities the plugin declares), with libcni's public API.
func (n *Network) delEach(ctx context.Context, c *libcni.CNIConfig, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	// libcni gives a DEL the cached result only from CNI 0.4.0 on.
	var prev types.Result
	if ok, _ := version.GreaterThanOrEqualTo(list.CNIVersion, "0.4.0"); ok {
		if cached, err := c.GetNetworkListCachedResult(list, rt); err == nil && cached != nil {
			prev, _ = cached.GetAsVersion(list.CNIVersion)
		}
	}
	args := &invoke.Args{
		Command: "DEL", ContainerID: rt.ContainerID, NetNS: rt.NetNS, PluginArgs: rt.Args, IfName: rt.IfName,
		Path: strings.Join(n.opts.BinDirs, string(os.PathListSeparator)),
	}
	var errs []error
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		plugin := list.Plugins[i]
		inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion}
		if prev != nil {
			inject["prevResult"] = prev
		}
		rc := map[string]any{}
		for capability, on := range plugin.Network.Capabilities {
			if v, ok := rt.CapabilityArgs[capability]; on && ok {
				rc[capability] = v
			}
		}
		if len(rc) > 0 {
			inject["runtimeConfig"] = rc
		}
		conf, err := libcni.InjectConf(plugin, inject)
		if err == nil {
			var path string
			if path, err = n.opts.Exec.FindInPath(plugin.Network.Type, n.opts.BinDirs); err == nil {
				err = invoke.ExecPluginWithoutResult(ctx, path, conf.Bytes, args, n.opts.Exec)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("plugin %s: %w", plugin.Network.Type, err))
		}
	}
	return errors.Join(errs...)
}

// Check runs CHECK on a live attachment.
func (n *Network) Check(ctx context.Context, a *sandbox.NetworkAttachment) error {
	list, rt, err := n.attachment(a, a.NetnsPath)
	if err != nil {
		return err
	}
	c, err := n.libcni(a.Dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.AddTimeout)
	defer cancel()
	if err := c.CheckNetworkList(ctx, list, rt); err != nil {
		return &Error{Op: "CHECK", Network: list.Name, SandboxID: a.SandboxID, Err: timeoutErr(ctx, err)}
	}
	return nil
}

// GC deletes the current network's attachments in libcni's cache (in dir,
// the Builder's directory for its network, unless Options.CacheDir is set)
// that do not belong to one of the valid sandbox IDs, and asks plugins
// that support it (CNI 1.1) to collect theirs. Without either it collects
// nothing and returns a *ConfigError (libcni's default cache is other
// runtimes').
func (n *Network) GC(ctx context.Context, dir string, valid []string) error {
	c, err := n.libcni(dir)
	if err != nil {
		return err
	}
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
	if err := c.GCNetworkList(ctx, list, args); err != nil {
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
