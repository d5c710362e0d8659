// Command podctl builds pod sandboxes with podsmith and runs their pause
// process with an OCI runtime (runc or crun). It reads the pod config files
// crictl reads (JSON or YAML) and is the simplest complete example of
// embedding podsmith's sandbox.Builder with a Runtime.
//
//	podctl [global flags] run [--no-start|--no-pause] POD_CONFIG   build and start; prints the ID
//	podctl [global flags] plan POD_CONFIG               the spec, or every problem; no side effect
//	podctl [global flags] inspect ID|NAME               one JSON object
//	podctl [global flags] ls [-o json|table]            every sandbox
//	podctl [global flags] stop ID|NAME                  stop the pause, release the network
//	podctl [global flags] rm [-f] ID|NAME               destroy (-f: a running one too)
//	podctl [global flags] recover                       finish what crashed runs left
//	podctl [global flags] join [--rootfs DIR] ID|NAME -- CMD...  run CMD in a container in the pod
//
// POD_CONFIG "-" is standard input. Errors are one line on stderr starting
// "podctl: "; the exit status is 0 on success, 1 on failure, 2 for a usage
// error, and 128+N when signal N (SIGINT, SIGTERM) cut a run short, after
// the build was rolled back. stop and rm of a sandbox that is not there
// fail ("no sandbox"), as crictl's do, unless --ignore-missing is given;
// a sandbox that goes away while they run is success.
//
// run --no-pause builds a pod without a pause process (its IPC and UTS
// namespaces pinned, as CRI-O's drop_infra_ctr), for pods whose
// containers do not share a PID namespace (namespace_options.pid
// CONTAINER or NODE). join runs a container in a pod, in the foreground,
// joined to the pod's namespaces and files (sandbox.ContainerOpts), from a
// busybox rootfs made of Debian's busybox-static unless --rootfs is given;
// the container is removed when CMD exits, and podctl exits with CMD's
// status.
//
// The pause process is not a child of podctl, which exits: the library's
// runtime driver (package oci) runs the runtime's create in a small
// monitor process (podctl itself, re-executed) that holds the pause as its
// child and reaps it when it exits, as conmon and containerd's shims do.
// The runtime keeps its state under podctl's run root, never in its own
// default state dir.
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
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/oci"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

// usageError is a command line that podctl cannot use (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// signalError is a run cut short by a signal (exit status 128+N).
type signalError struct {
	sig syscall.Signal
	err error
}

func (e *signalError) Error() string { return fmt.Sprintf("%v (%v)", e.err, e.sig) }
func (e *signalError) Unwrap() error { return e.err }

// globals are the flags before the command.
type globals struct {
	root, runRoot, netnsDir string
	runtime                 string
	cgroupManager           string
	cgroupParent            string
	pause                   string
	logLevel                string
	cniConfDir, cniBinDir   string
	cniTimeout              time.Duration
}

const usage = `usage: podctl [global flags] COMMAND [flags] [ARG]

commands:
  run [--no-start|--no-pause] POD_CONFIG
                                build a sandbox and start its pause process (none with
                                --no-pause: pods whose containers share no PID namespace)
  join [--rootfs DIR] ID|NAME -- CMD...
                                run CMD in a busybox container in the pod; exit with its status
  plan POD_CONFIG               print the sandbox's spec, or every problem with the config
  inspect ID|NAME               print a sandbox as one JSON object
  ls [-o json|table]            list sandboxes
  stop [--ignore-missing] ID|NAME    stop the pause process and release the network
  rm [-f] [--ignore-missing] ID|NAME destroy a sandbox (-f: a running one too)
  recover                       finish what crashed or killed runs left behind

POD_CONFIG "-" reads standard input.

global flags:
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == oci.MonitorCommand {
		os.Exit(oci.MonitorMain(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs podctl with args and returns its exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(args, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	var xe *exitStatusError
	if errors.As(err, &xe) {
		return xe.code // join's command said what it had to
	}
	fmt.Fprintln(stderr, "podctl: "+strings.ReplaceAll(err.Error(), "\n", "; "))
	var ue *usageError
	var se *signalError
	switch {
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &se):
		return 128 + int(se.sig)
	}
	return 1
}

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var g globals
	fs := flag.NewFlagSet("podctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.root, "root", sandbox.DefaultStateDir, "state dir (journals, names, the pause rootfs)")
	fs.StringVar(&g.runRoot, "run-root", sandbox.DefaultRunDir, "run dir (bundles, runtime state)")
	fs.StringVar(&g.netnsDir, "netns-dir", sandbox.DefaultNetnsDir, "where network namespaces are pinned")
	fs.StringVar(&g.runtime, "runtime", oci.DefaultRuntime, "OCI runtime: runc, crun, or a path")
	fs.StringVar(&g.cgroupManager, "cgroup-manager", string(cgroups.Cgroupfs), "cgroup manager: cgroupfs or systemd")
	fs.StringVar(&g.cgroupParent, "cgroup-parent", "", "cgroup parent of pods that name none (default: /podsmith, or podsmith.slice with systemd)")
	fs.StringVar(&g.pause, "pause", "", "static pause binary (default: catatonit on PATH)")
	fs.StringVar(&g.logLevel, "log-level", "warn", "debug, info, warn or error (to stderr)")
	fs.StringVar(&g.cniConfDir, "cni-conf-dir", cni.DefaultConfDir, "CNI network configurations (none there: loopback only)")
	fs.StringVar(&g.cniBinDir, "cni-bin-dir", strings.Join(cni.DefaultBinDirs, ","), "CNI plugin directories, comma-separated")
	fs.DurationVar(&g.cniTimeout, "cni-timeout", cni.DefaultAddTimeout, "how long a CNI ADD may take before the run is rolled back")
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
	if g.cniTimeout <= 0 {
		return usagef("--cni-timeout %v: must be positive", g.cniTimeout)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("no command (run, plan, inspect, ls, stop, rm, recover, join; -h for help)")
	}
	cmd, rest := rest[0], rest[1:]
	c := &cli{g: g, stdin: stdin, stdout: stdout, stderr: stderr}
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
	case "recover":
		return c.recover(rest)
	case "join":
		return c.join(rest)
	}
	return usagef("unknown command %q (run, plan, inspect, ls, stop, rm, recover, join)", cmd)
}

type cli struct {
	g         globals
	pauseMode sandbox.PauseMode // run --no-pause
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

// Whether a Builder needs the runtime.
const (
	noRuntime   = iota // plan, run --no-start
	mayRuntime         // ls, inspect: without it, pauses show as not ready
	needRuntime        // run, stop, rm, recover
)

// builder returns a Builder for the global flags. It writes nothing.
func (c *cli) builder(runtime int) (*sandbox.Builder, error) {
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
		AllowNoConfig: true,
		AddTimeout:    c.g.cniTimeout,
	})
	if err != nil {
		return nil, err
	}
	opts := sandbox.Options{
		Network:       network,
		StateDir:      c.g.root,
		RunDir:        c.g.runRoot,
		NetnsDir:      c.g.netnsDir,
		CgroupManager: manager,
		CgroupParent:  c.g.cgroupParent,
		Pause:         spec.PauseOptions{Binary: c.g.pause},
		PauseMode:     c.pauseMode,
		Logger:        slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level})),
	}
	if runtime != noRuntime {
		rt, err := c.runtime(manager)
		if err != nil && runtime == needRuntime {
			return nil, err
		}
		if err == nil {
			opts.Runtime = rt
		}
	}
	return sandbox.NewBuilder(opts)
}

// runtime returns the runtime's driver; its state goes under the run
// root, and its creates run in a monitor (this binary) that outlives
// podctl.
func (c *cli) runtime(manager cgroups.Manager) (*oci.Runtime, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var args []string
	if manager == cgroups.Systemd {
		args = []string{"--systemd-cgroup"}
	}
	return oci.New(oci.Options{
		Runtime:    c.g.runtime,
		Root:       filepath.Join(c.g.runRoot, "runtime", filepath.Base(c.g.runtime)),
		GlobalArgs: args,
		Monitor:    self,
	})
}

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
// file ("-": standard input), and returns the file's name and config.
func (c *cli) podConfig(fs *flag.FlagSet, args []string) (string, *pod.Config, error) {
	path, err := parse(fs, args, "pod config file")
	if err != nil {
		return "", nil, err
	}
	if path != "-" {
		cfg, err := pod.Load(path)
		return path, cfg, err
	}
	data, err := io.ReadAll(io.LimitReader(c.stdin, pod.MaxSize+1))
	if err != nil {
		return "", nil, fmt.Errorf("standard input: %w", err)
	}
	cfg, err := pod.Decode(data)
	var de *pod.DecodeError
	if errors.As(err, &de) {
		de.File = "(standard input)"
	}
	return "(standard input)", cfg, err
}

func (c *cli) run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	noStart := fs.Bool("no-start", false, "build the sandbox only")
	noPause := fs.Bool("no-pause", false, "no pause process: pin the pod's IPC and UTS namespaces instead")
	path, cfg, err := c.podConfig(fs, args)
	if err != nil {
		return err
	}
	need := needRuntime
	if *noStart || *noPause {
		need = noRuntime
	}
	if *noStart && *noPause {
		return usagef("run: --no-start and --no-pause: a pod without a pause has nothing to start")
	}
	if *noPause {
		c.pauseMode = sandbox.PauseNever
	}
	b, err := c.builder(need)
	if err != nil {
		return err
	}
	// SIGINT and SIGTERM cancel the build, which then rolls back; podctl
	// exits with 128+N once nothing is left of it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got os.Signal
	go func() {
		if s, ok := <-sigs; ok {
			got = s
			cancel()
		}
	}()
	sb, err := b.Build(ctx, cfg)
	if err != nil && ctx.Err() != nil && got != nil {
		return &signalError{sig: got.(syscall.Signal), err: err}
	}
	if errors.Is(err, sandbox.ErrInvalidConfig) {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(c.stdout, sb.ID); err != nil {
		return fmt.Errorf("sandbox %s is running, but its ID could not be printed: %w", sb.ID, err)
	}
	return nil
}

func (c *cli) plan(args []string) error {
	path, cfg, err := c.podConfig(flag.NewFlagSet("plan", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	b, err := c.builder(noRuntime)
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

// find returns the sandbox named by ref: an ID, a name, or a prefix of an
// ID that only one sandbox has (podctl's convenience, as crictl's).
func (c *cli) find(ref string, runtime int) (*sandbox.Sandbox, error) {
	b, err := c.builder(runtime)
	if err != nil {
		return nil, err
	}
	sb, err := b.Find(ref)
	if !errors.Is(err, sandbox.ErrNotFound) {
		return sb, err
	}
	if ref != "" && len(ref) < 64 && strings.Trim(ref, "0123456789abcdef") == "" {
		list, lerr := b.List()
		if lerr != nil {
			return nil, lerr
		}
		var match *sandbox.Sandbox
		for _, s := range list {
			if strings.HasPrefix(s.ID, ref) {
				if match != nil {
					return nil, fmt.Errorf("%q matches more than one sandbox", ref)
				}
				match = s
			}
		}
		if match != nil {
			return match, nil
		}
	}
	return nil, &missingError{ref: ref, err: err}
}

// missingError is a reference to a sandbox that is not there.
type missingError struct {
	ref string
	err error
}

func (e *missingError) Error() string { return fmt.Sprintf("no sandbox %q", truncate(e.ref)) }
func (e *missingError) Unwrap() error { return e.err }

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// view is what inspect prints, and ls -o json lists.
type view struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Metadata    pod.Metadata      `json:"metadata"`
	State       string            `json:"state"`
	Error       string            `json:"error,omitempty"`
	Created     time.Time         `json:"created"`
	BundleDir   string            `json:"bundle_dir"`
	NetnsPath   string            `json:"netns_path,omitempty"`
	NoPause     bool              `json:"no_pause,omitempty"`
	IPCNSPath   string            `json:"ipcns_path,omitempty"`
	UTSNSPath   string            `json:"utsns_path,omitempty"`
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
	stateReady        = "ready"         // built, pause running (or none: --no-pause)
	stateNotReady     = "notready"      // built, pause not running
	stateNeedsCleanup = "needs-cleanup" // a Build or Destroy did not finish
	stateBuilding     = "building"
)

func (c *cli) view(sb *sandbox.Sandbox) view {
	v := view{
		ID: sb.ID, Name: sb.Name, Created: sb.Created, BundleDir: sb.BundleDir, NetnsPath: sb.NetnsPath,
		NoPause: sb.NoPause, IPCNSPath: sb.IPCNSPath, UTSNSPath: sb.UTSNSPath,
		Hostname: sb.Hostname, CgroupsPath: sb.CgroupsPath, IPs: []string{}, Timings: map[string]string{},
		Labels: map[string]string{}, Annotations: map[string]string{}, Runtime: c.g.runtime,
	}
	if sb.Err != nil {
		v.Error = sb.Err.Error()
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
		if sb.NoPause {
			v.State = stateReady // its pins hold its namespaces
		} else if st, err := sb.PauseState(context.Background()); err == nil && st.Status == specs.StateRunning {
			v.State, v.PausePID, v.MonitorPID = stateReady, st.Pid, parentPID(st.Pid)
		}
	case sandbox.StateStopped: // stopped, or of an earlier boot
		v.State = stateNotReady
	case sandbox.StateBuilding:
		v.State = stateBuilding
	default:
		v.State = stateNeedsCleanup
	}
	return v
}

// parentPID returns the parent of process pid (the pause's monitor), 0 if
// unknown.
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

func (c *cli) inspect(args []string) error {
	ref, err := parse(flag.NewFlagSet("inspect", flag.ContinueOnError), args, "ID or name")
	if err != nil {
		return err
	}
	sb, err := c.find(ref, mayRuntime)
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
	b, err := c.builder(mayRuntime)
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

// target parses the one sandbox argument of stop and rm, and finds it.
// With --ignore-missing, a sandbox that is not there is (nil, nil).
func (c *cli) target(fs *flag.FlagSet, args []string) (*sandbox.Sandbox, error) {
	ignore := fs.Bool("ignore-missing", false, "succeed when no sandbox has the ID or name")
	ref, err := parse(fs, args, "ID or name")
	if err != nil {
		return nil, err
	}
	sb, err := c.find(ref, needRuntime)
	var me *missingError
	if *ignore && errors.As(err, &me) {
		return nil, nil
	}
	return sb, err
}

func (c *cli) stop(args []string) error {
	sb, err := c.target(flag.NewFlagSet("stop", flag.ContinueOnError), args)
	if sb == nil || err != nil {
		return err
	}
	if err := c.removeJoined(sb.ID); err != nil {
		return err
	}
	// Kill, wait and delete the pause, release the network: CRI's
	// StopPodSandbox. The rest stays until rm.
	return sb.Stop(context.Background())
}

func (c *cli) rm(args []string) error {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	force := fs.Bool("f", false, "remove a running sandbox too")
	sb, err := c.target(fs, args)
	if sb == nil || err != nil {
		return err
	}
	ctx := context.Background()
	if !*force && sb.NoPause && sb.State == sandbox.StateBuilt {
		return fmt.Errorf("sandbox %s is ready: stop it first, or rm -f", sb.ID[:13])
	}
	if !*force {
		st, err := sb.PauseState(ctx)
		if err == nil && st.Status == specs.StateRunning {
			return fmt.Errorf("sandbox %s is running: stop it first, or rm -f", sb.ID[:13])
		}
	}
	if err := c.removeJoined(sb.ID); err != nil {
		return err
	}
	// Destroy removes the pause container first (killing it with -f).
	return sb.Destroy(ctx)
}

func (c *cli) recover(args []string) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usagef("recover: %v", err)
	}
	if fs.NArg() != 0 {
		return usagef("recover: takes no arguments")
	}
	b, err := c.builder(needRuntime)
	if err != nil {
		return err
	}
	rep, err := b.Recover(context.Background())
	for _, id := range rep.Destroyed {
		fmt.Fprintf(c.stdout, "destroyed %s\n", id)
	}
	// Containers a killed join left in pods that are gone.
	if jerr := c.removeOrphanJoins(b); jerr != nil {
		err = errors.Join(err, jerr)
	}
	for _, p := range rep.Orphans {
		fmt.Fprintf(c.stdout, "removed %s\n", p)
	}
	for _, id := range rep.Busy {
		fmt.Fprintf(c.stdout, "busy %s\n", id)
	}
	return err
}
