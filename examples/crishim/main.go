//go:build linux

// Command crishim serves the CRI's v1 RuntimeService for pod sandboxes on
// a unix socket, with a podsmith sandbox.Builder behind it: kubelet's
// tools (crictl, critest) drive podsmith through it.
//
//	crishim --listen /run/podsmith/crishim.sock \
//	    --runtime runc --runtime-handler crun=/usr/bin/crun
//
// Pod sandboxes only: RunPodSandbox, StopPodSandbox, RemovePodSandbox,
// PodSandboxStatus, ListPodSandbox, Status, Version, RuntimeConfig, and
// ImageService.ImageFsInfo (critest asks for it before every spec);
// every other RPC is Unimplemented.
//
// No process per pod: the shim is the child subreaper of every pause it
// starts and watches each with a pidfd. After a restart it runs Recover,
// and adopts the pauses of this boot that still run (a pause that exited
// meanwhile shows as NOTREADY). On SIGTERM it finishes the requests in
// flight and exits, leaving the sandboxes running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/oci"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

// handlers is the repeatable --runtime-handler name=binary flag.
type handlers map[string]string

func (h handlers) String() string { return fmt.Sprint(map[string]string(h)) }

func (h handlers) Set(v string) error {
	name, bin, ok := strings.Cut(v, "=")
	if !ok || name == "" || bin == "" {
		return fmt.Errorf("want name=runtime, as crun=/usr/bin/crun")
	}
	h[name] = bin
	return nil
}

// config is the shim's command line.
type config struct {
	listen        string
	root, runRoot string
	netnsDir      string
	cniConfDir    string
	cniBinDir     string
	runtime       string
	handlers      handlers
	cgroupManager string
	cgroupParent  string
	pause         string
	seccomp       string
	selinux       bool
	logLevel      string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "crishim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	c := config{handlers: handlers{}}
	fs := flag.NewFlagSet("crishim", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", "/run/podsmith/crishim.sock", "the unix socket to serve on (unix:// optional)")
	fs.StringVar(&c.root, "root", sandbox.DefaultStateDir, "state dir: journals, names, the pause rootfs")
	fs.StringVar(&c.runRoot, "run-root", sandbox.DefaultRunDir, "run dir: bundles, the runtimes' state")
	fs.StringVar(&c.netnsDir, "netns-dir", sandbox.DefaultNetnsDir, "where network namespaces are pinned")
	fs.StringVar(&c.cniConfDir, "cni-conf-dir", cni.DefaultConfDir, "CNI configurations")
	fs.StringVar(&c.cniBinDir, "cni-bin-dir", strings.Join(cni.DefaultBinDirs, ","), "CNI plugins, comma-separated dirs")
	fs.StringVar(&c.runtime, "runtime", oci.DefaultRuntime, "the default runtime (handler \"\"): runc, crun or a path")
	fs.Var(c.handlers, "runtime-handler", "a named runtime handler, name=runc|crun|path (repeatable)")
	fs.StringVar(&c.cgroupManager, "cgroup-manager", string(cgroups.Cgroupfs), "cgroupfs or systemd")
	fs.StringVar(&c.cgroupParent, "cgroup-parent", "", "cgroup parent of pods that name none (default /podsmith, podsmith.slice with systemd)")
	fs.StringVar(&c.pause, "pause", "", "a static pause binary (default: catatonit -P)")
	fs.StringVar(&c.seccomp, "seccomp", "pause", "the RuntimeDefault seccomp profile of the pause: pause (the syscalls a pause makes) or runtime-default (the containers' default)")
	fs.BoolVar(&c.selinux, "selinux", true, "label the pauses and the sandboxes' files with the pods' selinux_options when the host has SELinux enabled (false: ignore them, as containerd's enable_selinux=false)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// A --listen that cannot be served is refused before anything is made.
	if err := checkListen(strings.TrimPrefix(c.listen, "unix://")); err != nil {
		return err
	}
	// Every pause this process starts becomes its child when the runtime's
	// create exits: it is watched, and reaped by the Stop that removes it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a child subreaper: %w", err)
	}
	s, err := newServer(c, log)
	if err != nil {
		return err
	}
	// The shim indexes its sandboxes in memory: a second shim on the same
	// dirs would not see the first's, call its pauses not ready, and
	// leave what it destroys listed in the first.
	unlock, err := own(c.root)
	if err != nil {
		return err
	}
	defer unlock()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := s.adopt(ctx); err != nil {
		return err
	}
	lis, err := listen(strings.TrimPrefix(c.listen, "unix://"))
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	runtime.RegisterRuntimeServiceServer(srv, s)
	runtime.RegisterImageServiceServer(srv, s)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Info("serving", "socket", lis.Addr().String(), "sandboxes", s.count())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Finish what is in flight (a Build's own rollback included); the
	// sandboxes keep running.
	log.Info("shutting down: finishing the requests in flight")
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		srv.Stop()
	}
	return nil
}

// own takes the state dir's lock (a flock on the directory, let go when
// the process ends), or says that another shim holds it.
func own(dir string) (unlock func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state dir %s: another crishim serves it", dir)
		}
		return nil, fmt.Errorf("state dir %s: lock: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// checkListen refuses a path listen would refuse, and changes nothing: a
// live socket (another server listens there), or a file that is not a
// socket (a typo, /dev/null), which listen must not remove.
func checkListen(path string) error {
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("%s: another server listens there", path)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s: exists and is not a socket", path)
	}
	return nil
}

// listen makes the unix socket at path, replacing a stale one (whose
// server is gone) but never a live one, nor any other kind of file.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := checkListen(path); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, err
	}
	return lis, nil
}

// builder makes the Builder: the CNI network, a runtime per handler, and
// the pause's seccomp profile.
func builder(c config, log *slog.Logger) (*sandbox.Builder, *cni.Network, error) {
	manager, err := cgroups.ParseManager(c.cgroupManager)
	if err != nil {
		return nil, nil, fmt.Errorf("--cgroup-manager: %w", err)
	}
	network, err := cni.New(cni.Options{ConfDir: c.cniConfDir, BinDirs: strings.Split(c.cniBinDir, ",")})
	if err != nil {
		return nil, nil, err
	}
	newRuntime := func(bin string) (*oci.Runtime, error) {
		var args []string
		if manager == cgroups.Systemd {
			args = []string{"--systemd-cgroup"}
		}
		return oci.New(oci.Options{Runtime: bin, Root: filepath.Join(c.runRoot, "runtime", filepath.Base(bin)), GlobalArgs: args})
	}
	opts := sandbox.Options{
		StateDir: c.root, RunDir: c.runRoot, NetnsDir: c.netnsDir,
		CgroupManager: manager, CgroupParent: c.cgroupParent,
		Pause:   spec.PauseOptions{Binary: c.pause},
		Network: network,
		Logger:  log,
		SELinux: c.selinux,
	}
	switch c.seccomp {
	case "pause":
		opts.Seccomp.RuntimeDefault = spec.PauseProfile()
	case "runtime-default":
	default:
		return nil, nil, fmt.Errorf("--seccomp %q: want pause or runtime-default", c.seccomp)
	}
	if opts.Runtime, err = newRuntime(c.runtime); err != nil {
		return nil, nil, err
	}
	opts.RuntimeHandlers = map[string]sandbox.Runtime{}
	for name, bin := range c.handlers {
		if opts.RuntimeHandlers[name], err = newRuntime(bin); err != nil {
			return nil, nil, fmt.Errorf("--runtime-handler %s: %w", name, err)
		}
	}
	b, err := sandbox.NewBuilder(opts)
	if err != nil {
		return nil, nil, err
	}
	_, err = b.Prepare()
	return b, network, err
}
