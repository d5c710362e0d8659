package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/oci"
)

// NewRuntime returns podsmith's driver of the OCI runtime called name
// (runc or crun) made of RuntimeOptions.
func NewRuntime(t testing.TB, name string) *oci.Runtime {
	t.Helper()
	o := RuntimeOptions(t, name)
	if t.Skipped() {
		return nil
	}
	r, err := oci.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// RuntimeOptions are the options of the OCI runtime called name (runc or
// crun) for a test, with its state under the test's own temp dir, never
// the runtime's default state dir. A missing runtime skips the test, or
// fails it under PODSMITH_REQUIRE_ROOT=1. It makes this process a child
// subreaper, so that pause processes become its children when their
// runtime exits and are reaped (oci's Wait reaps them). On a hybrid
// cgroup host crun runs through CrunWrapper.
func RuntimeOptions(t testing.TB, name string) oci.Options {
	t.Helper()
	if RequireBinaries(t, name) == nil {
		return oci.Options{}
	}
	if err := BecomeSubreaper(); err != nil {
		t.Fatalf("subreaper: %v", err)
	}
	o, err := runtimeOptionsAt(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// RuntimeAt is NewRuntime outside a test (a crash test's child process):
// the runtime's state and the crun wrapper go under dir.
func RuntimeAt(dir, name string) (*oci.Runtime, error) {
	o, err := runtimeOptionsAt(dir, name)
	if err != nil {
		return nil, err
	}
	return oci.New(o)
}

func runtimeOptionsAt(dir, name string) (oci.Options, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return oci.Options{}, err
	}
	if name == "crun" {
		hybrid, err := HybridCgroups()
		if err != nil {
			return oci.Options{}, err
		}
		if hybrid {
			if bin, err = CrunWrapper(dir, bin); err != nil {
				return oci.Options{}, err
			}
		}
	}
	return oci.Options{Runtime: bin, Root: filepath.Join(dir, name+"-state")}, nil
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
// A private tmpfs then covers that path: crun takes the bare directory the
// unmount uncovers for a v1 hierarchy and writes cgroup dirs into it,
// which would stay on the host's /sys/fs/cgroup tmpfs, hidden under the
// cgroup2 mount, with nothing ever removing them.
// Every crun call goes through it, so create, start, kill and delete all
// see the same layout.
func CrunWrapper(dir, crun string) (string, error) {
	script := "#!/bin/sh\n" +
		"# crun with the hybrid cgroup2 mount hidden: see testutil.CrunWrapper.\n" +
		"exec unshare --mount --propagation private sh -c 'umount -l /sys/fs/cgroup/unified && " +
		"mount -t tmpfs -o size=64k,mode=755 podsmith-crun-hybrid /sys/fs/cgroup/unified && exec \"$0\" \"$@\"' " +
		strconv.Quote(crun) + " \"$@\"\n"
	p := filepath.Join(dir, "crun-hybrid")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		return "", err
	}
	return p, nil
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

// RemoveContainer removes a container as sandbox's rollback does: kill,
// wait (which reaps a pause that is this subreaper's child), delete.
func RemoveContainer(r *oci.Runtime, id string) error {
	ctx := context.Background()
	return errors.Join(r.Kill(ctx, id, unix.SIGKILL), r.Wait(ctx, id), r.Delete(ctx, id))
}
