package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Runtime drives an OCI runtime (runc or crun) for tests, with its state
// under the test's own temp dir, never the runtime's default state dir.
type Runtime struct {
	Name string // "runc" or "crun"
	Bin  string // what to run: the binary, or the crun wrapper (see CrunWrapper)
	Root string // the runtime's --root
	logs string
}

// NewRuntime finds the runtime called name (a missing one skips the test,
// or fails it under PODSMITH_REQUIRE_ROOT=1) and makes this process a child
// subreaper, so that pause processes become its children when their runtime
// exits and can be waited for.
func NewRuntime(t testing.TB, name string) *Runtime {
	t.Helper()
	bins := RequireBinaries(t, name)
	if bins == nil {
		return nil
	}
	if err := BecomeSubreaper(); err != nil {
		t.Fatalf("subreaper: %v", err)
	}
	dir := t.TempDir()
	r := &Runtime{Name: name, Bin: bins[name], Root: filepath.Join(dir, "state"), logs: dir}
	if name == "crun" {
		hybrid, err := HybridCgroups()
		if err != nil {
			t.Fatal(err)
		}
		if hybrid {
			w, err := CrunWrapper(dir, bins[name])
			if err != nil {
				t.Fatal(err)
			}
			r.Bin = w
		}
	}
	return r
}

var subreaper = sync.OnceValue(func() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
})

// BecomeSubreaper makes this process a child subreaper: orphans among its
// descendants (a pause process whose runtime exited, a monitor whose
// launcher exited) become its children, so a test can wait for them and
// reap them (WaitExit) instead of leaving zombies to a PID 1 that may
// not reap.
func BecomeSubreaper() error { return subreaper() }

// HybridCgroups reports whether the host mounts cgroup v1 controllers and a
// cgroup2 hierarchy at /sys/fs/cgroup/unified (systemd's hybrid layout).
func HybridCgroups() (bool, error) {
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter("/sys/fs/cgroup/unified"))
	if err != nil {
		return false, err
	}
	return len(infos) == 1 && infos[0].FSType == "cgroup2", nil
}

// CrunWrapper writes, into dir, a script that runs crun with the host's
// hybrid cgroup layout hidden. crun 1.8.1 refuses a hybrid layout ("cgroups
// in hybrid mode not supported, drop all controllers from cgroupv2"), even
// with --cgroup-manager=disabled. The script runs crun in a private mount
// namespace where the cgroup2 mount at /sys/fs/cgroup/unified is lazily
// unmounted, so crun sees pure cgroup v1; the host's mounts are untouched.
// Every crun call goes through it, so create, start, kill and delete all
// see the same layout.
func CrunWrapper(dir, crun string) (string, error) {
	script := "#!/bin/sh\n" +
		"# crun with the hybrid cgroup2 mount hidden: see testutil.CrunWrapper.\n" +
		"exec unshare --mount --propagation private sh -c 'umount -l /sys/fs/cgroup/unified && exec \"$0\" \"$@\"' " +
		strconv.Quote(crun) + " \"$@\"\n"
	p := filepath.Join(dir, "crun-hybrid")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		return "", err
	}
	return p, nil
}

// Run runs the runtime with args after --root. Its standard streams go to
// a file, not a pipe: a container started by create inherits them, and a
// pipe would keep the caller waiting until the container exits.
func (r *Runtime) Run(args ...string) error {
	log, err := os.CreateTemp(r.logs, r.Name+"-*.log")
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(r.Bin, append([]string{"--root", r.Root}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(log.Name())
		return fmt.Errorf("%s %s: %w: %s", r.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Create creates container id from bundle and returns its init PID.
func (r *Runtime) Create(id, bundle string) (int, error) {
	pidFile := filepath.Join(r.logs, id+".pid")
	if err := r.Run("create", "--bundle", bundle, "--pid-file", pidFile, id); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Start starts a created container.
func (r *Runtime) Start(id string) error { return r.Run("start", id) }

// Stop kills the container's init with SIGKILL, waits for it to exit and
// deletes the container: what a shim does (runc 1.1's `delete -f` sleeps
// 100 ms before it first checks).
func (r *Runtime) Stop(id string, pid int) error {
	killErr := r.Run("kill", id, "KILL")
	var waitErr error
	if pid > 0 {
		waitErr = WaitExit(pid)
	}
	return errors.Join(killErr, waitErr, r.Run("delete", id))
}

// WaitExit waits for process pid to exit, without polling: a child (a
// pause process reparented to this subreaper) is reaped with wait4, any
// other process is watched through a pidfd.
func WaitExit(pid int) error {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err == nil {
			return nil
		}
		if err != unix.ECHILD {
			return fmt.Errorf("wait4 %d: %w", pid, err)
		}
		break
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return nil // already gone
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// CgroupDirs returns the directories of the cgroup path rel (as a runtime
// makes it from a cgroupfs cgroupsPath) in every mounted hierarchy, whether
// or not they exist.
func CgroupDirs(rel string) ([]string, error) {
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) {
		return i.FSType != "cgroup" && i.FSType != "cgroup2", false
	})
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, i := range infos {
		dirs = append(dirs, filepath.Join(i.Mountpoint, rel))
	}
	return dirs, nil
}

// RemoveCgroup removes the cgroup directory rel and its parents up to (and
// including) top, in every hierarchy, where they exist and are empty.
func RemoveCgroup(rel, top string) error {
	var errs []error
	for p := filepath.Clean(rel); ; p = filepath.Dir(p) {
		dirs, err := CgroupDirs(p)
		if err != nil {
			return err
		}
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && err != unix.ENOENT {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
		if p == filepath.Clean(top) || p == "/" || p == "." {
			break
		}
	}
	return errors.Join(errs...)
}
