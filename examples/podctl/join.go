package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/podsmith/podsmith/cgroups"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

// exitStatusError is the status a joined container's command exited with:
// podctl exits with it, saying nothing more.
type exitStatusError struct{ code int }

func (e *exitStatusError) Error() string {
	return fmt.Sprintf("the command exited with status %d", e.code)
}

// busybox is Debian's busybox-static, the default rootfs of join.
const busybox = "/bin/busybox"

// join runs a command in a container in a pod: joined to the pod's
// namespaces and files by sandbox.ContainerOpts, in the foreground, with
// podctl's standard streams; the container is removed when it exits.
func (c *cli) join(args []string) error {
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rootfs := fs.String("rootfs", "", "the container's root file system (default: one of "+busybox+", made for the run)")
	if err := fs.Parse(args); err != nil {
		return usagef("join: %v", err)
	}
	rest := fs.Args()
	if len(rest) < 2 {
		return usagef("join: want ID|NAME -- CMD...")
	}
	ref, cmd := rest[0], rest[1:]
	if cmd[0] == "--" {
		cmd = cmd[1:]
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return usagef("join: no command")
	}
	sb, err := c.find(ref, needRuntime)
	if err != nil {
		return err
	}
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	id := joinPrefix(sb.ID) + hex.EncodeToString(raw[:])
	opts, err := sb.ContainerOpts(context.Background(), id, sb.Config.Namespaces().Pid)
	if err != nil {
		return err
	}
	// The container's own dir: its bundle, and its rootfs when it is
	// busybox's. Gone when it exits (or, should podctl be killed, with the
	// pod: removeJoined).
	// Searchable by others (0711): the root of a pod's user namespace
	// reaches its rootfs through them.
	if err := os.MkdirAll(c.joinsDir(), 0o711); err != nil {
		return err
	}
	dir := filepath.Join(c.joinsDir(), id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *rootfs == "" {
		if *rootfs, err = busyboxRootfs(filepath.Join(dir, "rootfs")); err != nil {
			return err
		}
	}
	s, err := spec.New(append([]spec.Opt{
		spec.WithRoot(*rootfs, true), spec.WithArgs(cmd...), spec.WithUser(0, 0), spec.WithOOMScoreAdj(0),
		spec.WithSeccomp(spec.RuntimeDefaultProfile()),
	}, opts...)...)
	if err != nil {
		return err
	}
	if err := spec.Save(dir, s, spec.SaveOptions{}); err != nil {
		return err
	}
	return c.runForeground(id, dir)
}

// runForeground runs the container with the runtime's run (not detached),
// with podctl's standard streams, and removes what is left of it.
func (c *cli) runForeground(id, bundle string) error {
	manager, err := cgroups.ParseManager(c.g.cgroupManager)
	if err != nil {
		return usagef("--cgroup-manager: %v", err)
	}
	global := []string{"--root", filepath.Join(c.g.runRoot, "runtime", filepath.Base(c.g.runtime))}
	if manager == cgroups.Systemd {
		global = append(global, "--systemd-cgroup")
	}
	run := exec.Command(c.g.runtime, append(global, "run", "--bundle", bundle, id)...)
	run.Stdin, run.Stdout, run.Stderr = streamIn(c.stdin), streamOut(c.stdout), streamOut(c.stderr)
	// A pipe's copy (for a swapped /dev/null) must not keep the run
	// waiting on a process of the pod that still holds the pipe.
	run.WaitDelay = time.Second
	err = run.Run()
	// run removes the container when its process exits; a run that
	// failed half-way may have left it.
	_ = exec.Command(c.g.runtime, append(global, "delete", "--force", id)...).Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return &exitStatusError{code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("join: %s run: %w", c.g.runtime, err)
	}
	return nil
}

// streamIn and streamOut give the container podctl's standard streams,
// except the node's /dev/null, for which they give what reads nothing or
// takes everything through a pipe: crun before 1.23 chowns a container's
// standard streams to the root of its user namespace, and the node's
// /dev/null would then belong to an unprivileged host user.
func streamIn(r io.Reader) io.Reader {
	if isNodeNull(r) {
		return strings.NewReader("")
	}
	return r
}

func streamOut(w io.Writer) io.Writer {
	if isNodeNull(w) {
		return io.Discard
	}
	return w
}

// isNodeNull reports whether v is an open file of the node's /dev/null.
func isNodeNull(v any) bool {
	f, ok := v.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}

// joinPrefix starts the IDs of the containers join runs in a pod (its ID,
// or the ID's first 12 characters).
func joinPrefix(sandboxID string) string { return "join-" + sandboxID[:12] + "-" }

func (c *cli) joinsDir() string { return filepath.Join(c.g.runRoot, "joins") }

// removeJoined removes what join left in a pod whose podctl was killed
// while its command ran: the runtime's container (killed) and its dir.
// stop and rm call it before they stop the pod.
func (c *cli) removeJoined(sandboxID string) error {
	prefix := joinPrefix(sandboxID)
	global := []string{"--root", filepath.Join(c.g.runRoot, "runtime", filepath.Base(c.g.runtime))}
	if c.g.cgroupManager == string(cgroups.Systemd) {
		global = append(global, "--systemd-cgroup")
	}
	var errs []error
	for _, dir := range []string{global[1], c.joinsDir()} {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, e := range ents {
			id := e.Name()
			if !strings.HasPrefix(id, prefix) {
				continue
			}
			if dir == global[1] {
				_ = exec.Command(c.g.runtime, append(global, "kill", id, "KILL")...).Run()
				if out, err := exec.Command(c.g.runtime, append(global, "delete", "--force", id)...).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("joined container %s: %s delete: %w: %s", id, c.g.runtime, err, strings.TrimSpace(string(out))))
				}
			} else if err := os.RemoveAll(filepath.Join(dir, id)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeOrphanJoins removes what killed joins left in pods that no longer
// exist (a pod Recover destroyed): recover calls it.
func (c *cli) removeOrphanJoins(b *sandbox.Builder) error {
	list, err := b.List()
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, sb := range list {
		live[joinPrefix(sb.ID)] = true
	}
	pods := map[string]bool{}
	for _, dir := range []string{filepath.Join(c.g.runRoot, "runtime", filepath.Base(c.g.runtime)), c.joinsDir()} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			// join-<12 hex of the pod>-<16 hex>
			if name := e.Name(); strings.HasPrefix(name, "join-") && len(name) == len("join-")+12+1+16 && !live[name[:len("join-")+13]] {
				pods[name[len("join-"):len("join-")+12]] = true
			}
		}
	}
	var errs []error
	for short := range pods {
		errs = append(errs, c.removeJoined(short))
	}
	return errors.Join(errs...)
}

// busyboxRootfs makes a rootfs of busybox at root: /bin/busybox, /bin/sh
// and the directories a runtime mounts on.
func busyboxRootfs(root string) (string, error) {
	data, err := os.ReadFile(busybox)
	if err != nil {
		return "", fmt.Errorf("join: the default rootfs needs Debian's busybox-static (or give --rootfs): %w", err)
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "dev", "shm"), 0o755); err != nil {
		return "", err
	}
	// What the runtime mounts on: one in a user namespace cannot create
	// them in a read-only rootfs.
	for _, f := range []string{"etc/hostname", "etc/hosts", "etc/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return "", err
	}
	for _, applet := range []string{"sh", "hostname", "ip", "ping", "cat", "ls", "echo", "awk", "grep", "head", "tail", "sleep", "ps", "wget", "nc"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			return "", err
		}
	}
	return root, nil
}
