// Command podctl builds pod sandboxes with podsmith and runs their pause
// process with an OCI runtime (runc or crun). It reads the pod config files
// crictl reads (JSON or YAML) and is the simplest complete example of
// embedding podsmith's sandbox.Builder.
//
//	podctl [global flags] run [--no-start] POD_CONFIG   build and start; prints the ID
//	podctl [global flags] plan POD_CONFIG               the spec, or every problem; no side effect
//	podctl [global flags] inspect ID|NAME               one JSON object
//	podctl [global flags] ls [-o json|table]            every sandbox
//	podctl [global flags] stop ID|NAME                  stop the pause, release the network
//	podctl [global flags] rm [-f] ID|NAME               destroy (-f: stop it first)
//
// Errors are one line on stderr starting "podctl: "; the exit status is 0
// on success, 1 on failure and 2 for a usage error. stop and rm succeed on
// a sandbox that is already gone, as CRI's StopPodSandbox and
// RemovePodSandbox do.
//
// The pause process is not a child of podctl, which exits: a small monitor
// (podctl itself, re-executed) runs the runtime's create as a child
// subreaper, so that the pause becomes its child, and reaps it when it
// exits, as conmon and containerd's shims do. The runtime keeps its state
// under podctl's run root, never in its own default state dir.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

// usageError is a command line that podctl cannot use (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// globals are the flags before the command.
type globals struct {
	root, runRoot, netnsDir string
	runtime                 string
	cgroupManager           string
	cgroupParent            string
	pause                   string
	logLevel                string
	cniConfDir, cniBinDir   string
}

const usage = `usage: podctl [global flags] COMMAND [flags] [ARG]

commands:
  run [--no-start] POD_CONFIG   build a sandbox and start its pause process; print its ID
  plan POD_CONFIG               print the sandbox's spec, or every problem with the config
  inspect ID|NAME               print a sandbox as one JSON object
  ls [-o json|table]            list sandboxes
  stop ID|NAME                  stop the pause process and release the network
  rm [-f] ID|NAME               destroy a sandbox (-f: stop it first)

global flags:
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == monitorCommand {
		os.Exit(monitorMain(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs podctl with args and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	if err == nil {
		return 0
	}
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintln(stderr, "podctl: "+msg)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	var g globals
	fs := flag.NewFlagSet("podctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.root, "root", sandbox.DefaultStateDir, "state dir (journals, names, the pause rootfs)")
	fs.StringVar(&g.runRoot, "run-root", sandbox.DefaultRunDir, "run dir (bundles, runtime state)")
	fs.StringVar(&g.netnsDir, "netns-dir", sandbox.DefaultNetnsDir, "where network namespaces are pinned")
	fs.StringVar(&g.runtime, "runtime", "runc", "OCI runtime: runc, crun, or a path")
	fs.StringVar(&g.cgroupManager, "cgroup-manager", string(cgroups.Cgroupfs), "cgroup manager: cgroupfs or systemd")
	fs.StringVar(&g.cgroupParent, "cgroup-parent", "", "cgroup parent of pods that name none (default: /podsmith, or podsmith.slice with systemd)")
	fs.StringVar(&g.pause, "pause", "", "static pause binary (default: catatonit on PATH)")
	fs.StringVar(&g.logLevel, "log-level", "warn", "debug, info, warn or error (to stderr)")
	fs.StringVar(&g.cniConfDir, "cni-conf-dir", cni.DefaultConfDir, "CNI network configurations (none there: loopback only)")
	fs.StringVar(&g.cniBinDir, "cni-bin-dir", strings.Join(cni.DefaultBinDirs, ","), "CNI plugin directories, comma-separated")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return usagef("%v", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("no command (run, plan, inspect, ls, stop, rm; -h for help)")
	}
	cmd, rest := rest[0], rest[1:]
	c := &cli{g: g, stdout: stdout, stderr: stderr}
	switch cmd {
	case "run":
		return c.run(rest)
	case "plan":
		return c.plan(rest)
	case "inspect":
		return c.inspect(rest)
	case "ls", "list":
		return c.ls(rest)
	case "stop":
		return c.stop(rest)
	case "rm", "remove":
		return c.rm(rest)
	}
	return usagef("unknown command %q (run, plan, inspect, ls, stop, rm)", cmd)
}

type cli struct {
	g      globals
	stdout io.Writer
	stderr io.Writer
}

// builder returns a Builder for the global flags. It writes nothing.
func (c *cli) builder() (*sandbox.Builder, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.g.logLevel)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", c.g.logLevel)
	}
	manager, err := cgroups.ParseManager(c.g.cgroupManager)
	if err != nil {
		return nil, usagef("--cgroup-manager: %v", err)
	}
	// Always a Network, even with no configuration in the conf dir (then
	// pods get loopback only): a sandbox attached earlier is detached
	// with the configuration its journal recorded.
	network, err := cni.New(cni.Options{
		ConfDir:       c.g.cniConfDir,
		BinDirs:       strings.Split(c.g.cniBinDir, ","),
		CacheDir:      filepath.Join(c.g.root, "cni"),
		AllowNoConfig: true,
	})
	if err != nil {
		return nil, err
	}
	return sandbox.NewBuilder(sandbox.Options{
		Network:       network,
		StateDir:      c.g.root,
		RunDir:        c.g.runRoot,
		NetnsDir:      c.g.netnsDir,
		CgroupManager: manager,
		CgroupParent:  c.g.cgroupParent,
		Pause:         spec.PauseOptions{Binary: c.g.pause},
		Logger:        slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level})),
	})
}

func (c *cli) runtime() *ociRuntime { return newRuntime(c.g.runtime, c.g.runRoot) }

// parse parses a command's flags and checks it got exactly one argument.
func parse(fs *flag.FlagSet, args []string, what string) (string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return "", usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() != 1 {
		return "", usagef("%s: want one %s, got %d arguments", fs.Name(), what, fs.NArg())
	}
	return fs.Arg(0), nil
}

// podConfig parses a command's flags and its one argument, a pod config
// file, and returns the file's path and config, and the Builder.
func (c *cli) podConfig(fs *flag.FlagSet, args []string) (string, *sandbox.Config, *sandbox.Builder, error) {
	path, err := parse(fs, args, "pod config file")
	if err != nil {
		return "", nil, nil, err
	}
	cfg, err := sandbox.LoadConfig(path)
	if err != nil {
		return "", nil, nil, err
	}
	b, err := c.builder()
	return path, cfg, b, err
}

func (c *cli) run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	noStart := fs.Bool("no-start", false, "build the sandbox only")
	path, cfg, b, err := c.podConfig(fs, args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	sb, err := b.Build(ctx, cfg)
	if errors.Is(err, sandbox.ErrInvalidConfig) {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err != nil {
		return err
	}
	if !*noStart {
		rt := c.runtime()
		if err := rt.start(sb.ID, sb.BundleDir); err != nil {
			// Nothing is left of a sandbox whose pause did not start.
			err = errors.Join(err, sb.Destroy(ctx), rt.forget(sb.ID))
			return err
		}
	}
	fmt.Fprintln(c.stdout, sb.ID)
	return nil
}

func (c *cli) plan(args []string) error {
	path, cfg, b, err := c.podConfig(flag.NewFlagSet("plan", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	p, err := b.Plan(cfg)
	var ce *sandbox.ConfigError
	if errors.As(err, &ce) {
		// Every problem on a line of its own (on stdout: it is the
		// command's answer), then the one-line error.
		for _, pr := range ce.Problems {
			fmt.Fprintf(c.stdout, "%s: %s\n", pr.Field, pr.Reason)
		}
		return fmt.Errorf("%s: %d problem(s) in the pod config", path, len(ce.Problems))
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(p.Spec)
}

// find returns the sandbox named by ref (an ID, a unique ID prefix or a
// name).
func (c *cli) find(ref string) (*sandbox.Builder, *sandbox.Sandbox, error) {
	b, err := c.builder()
	if err != nil {
		return nil, nil, err
	}
	sb, err := b.Find(ref)
	return b, sb, err
}

// view is what inspect prints, and ls -o json lists.
type view struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Metadata    sandbox.Metadata  `json:"metadata"`
	State       string            `json:"state"`
	Created     time.Time         `json:"created"`
	BundleDir   string            `json:"bundle_dir"`
	NetnsPath   string            `json:"netns_path,omitempty"`
	IPs         []string          `json:"ips"`
	PausePID    int               `json:"pause_pid,omitempty"`
	MonitorPID  int               `json:"monitor_pid,omitempty"`
	Hostname    string            `json:"hostname"`
	CgroupsPath string            `json:"cgroups_path"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Timings     map[string]string `json:"timings"`
	Runtime     string            `json:"runtime"`
}

// States a sandbox is shown in.
const (
	stateReady        = "ready"         // built, pause running
	stateNotReady     = "notready"      // built, pause not running
	stateNeedsCleanup = "needs-cleanup" // a Build or Destroy did not finish
	stateBuilding     = "building"
)

func (c *cli) view(sb *sandbox.Sandbox) view {
	v := view{
		ID: sb.ID, Name: sb.Name, Created: sb.Created, BundleDir: sb.BundleDir, NetnsPath: sb.NetnsPath,
		Hostname: sb.Hostname, CgroupsPath: sb.CgroupsPath, IPs: []string{}, Timings: map[string]string{},
		Labels: map[string]string{}, Annotations: map[string]string{}, Runtime: c.g.runtime,
	}
	if sb.Config != nil {
		v.Metadata = sb.Config.Metadata
		if sb.Config.Labels != nil {
			v.Labels = sb.Config.Labels
		}
		if sb.Config.Annotations != nil {
			v.Annotations = sb.Config.Annotations
		}
	}
	for _, ip := range sb.IPs {
		v.IPs = append(v.IPs, ip.String())
	}
	for _, t := range sb.Timings {
		v.Timings[string(t.Step)] = t.Duration.String()
	}
	switch sb.State {
	case sandbox.StateBuilt:
		v.State = stateNotReady
		rt := c.runtime()
		if st, err := rt.state(sb.ID); err == nil && st != nil && st.Status == "running" && alive(st.Pid) {
			v.State, v.PausePID = stateReady, st.Pid
		}
		v.MonitorPID = rt.monitorPID(sb.ID)
	case sandbox.StateBuilding:
		v.State = stateBuilding
	default:
		v.State = stateNeedsCleanup
	}
	return v
}

func (c *cli) inspect(args []string) error {
	ref, err := parse(flag.NewFlagSet("inspect", flag.ContinueOnError), args, "ID or name")
	if err != nil {
		return err
	}
	_, sb, err := c.find(ref)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(c.view(sb))
}

func (c *cli) ls(args []string) error {
	fs := flag.NewFlagSet("ls", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	format := fs.String("o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return usagef("ls: %v", err)
	}
	if fs.NArg() != 0 {
		return usagef("ls: takes no arguments")
	}
	if *format != "table" && *format != "json" {
		return usagef("ls: -o %q: want table or json", *format)
	}
	b, err := c.builder()
	if err != nil {
		return err
	}
	list, err := b.List()
	if err != nil {
		return err
	}
	views := make([]view, 0, len(list))
	for _, sb := range list {
		views = append(views, c.view(sb))
	}
	if *format == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tCREATED\tIPS")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID[:13], v.Name, v.State, v.Created.Local().Format(time.DateTime), strings.Join(v.IPs, ","))
	}
	return tw.Flush()
}

func (c *cli) stop(args []string) error {
	ref, err := parse(flag.NewFlagSet("stop", flag.ContinueOnError), args, "ID or name")
	if err != nil {
		return err
	}
	_, sb, err := c.find(ref)
	if errors.Is(err, sandbox.ErrNotFound) {
		return nil // stopping what is gone is done, as in CRI
	}
	if err != nil {
		return err
	}
	return c.stopSandbox(sb)
}

// stopSandbox stops the pause process (runtime kill, wait for it to exit,
// runtime delete) and releases the sandbox's network, as CRI's
// StopPodSandbox does. The rest stays until rm.
func (c *cli) stopSandbox(sb *sandbox.Sandbox) error {
	if err := c.runtime().stop(sb.ID); err != nil {
		return err
	}
	if sb.State != sandbox.StateBuilt {
		return nil
	}
	return sb.ReleaseNetwork(context.Background())
}

func (c *cli) rm(args []string) error {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	force := fs.Bool("f", false, "stop a running sandbox first")
	ref, err := parse(fs, args, "ID or name")
	if err != nil {
		return err
	}
	_, sb, err := c.find(ref)
	if errors.Is(err, sandbox.ErrNotFound) {
		return nil // removing what is gone is done, as in CRI
	}
	if err != nil {
		return err
	}
	rt := c.runtime()
	running, err := rt.running(sb.ID)
	if err != nil {
		return err
	}
	if running && !*force {
		return fmt.Errorf("sandbox %s is running: stop it first, or rm -f", sb.ID[:13])
	}
	if err := c.stopSandbox(sb); err != nil {
		return err
	}
	if err := sb.Destroy(context.Background()); err != nil {
		return err
	}
	return rt.forget(sb.ID)
}
