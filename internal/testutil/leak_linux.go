package testutil

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// LeakCheck is a snapshot of what a test could leave behind.
type LeakCheck struct {
	opts Leaks

	mu      sync.Mutex
	mounts  map[string]bool
	files   map[string]bool
	pins    map[string]bool
	links   map[string]bool
	tracked []string // link names learned during the test
	pids    []int    // processes the test started
	devNull string   // the node's /dev/null as the test found it
}

// CheckLeaks takes a snapshot now and registers a cleanup that fails t if
// anything new is left when the test and its later cleanups are done.
// Register it before the cleanups that tear the test's resources down, so
// that it runs after them.
func CheckLeaks(t testing.TB, opts Leaks) *LeakCheck {
	t.Helper()
	for i, r := range opts.Roots {
		opts.Roots[i] = filepath.Clean(r)
	}
	lc := &LeakCheck{opts: opts, devNull: nodeDevNull()}
	var err error
	if lc.mounts, err = lc.mountPoints(); err == nil {
		lc.files, err = lc.walk()
	}
	if err == nil {
		lc.pins, err = lc.pinEntries()
	}
	if err == nil {
		lc.links, err = lc.linkNames()
	}
	if err != nil {
		t.Fatalf("leak check snapshot: %v", err)
	}
	t.Cleanup(func() {
		if msg := lc.check(true); msg != "" {
			t.Errorf("leak check:%s", msg)
		}
	})
	return lc
}

// TrackLink names a link the test learned of (a CNI host-side veth, say):
// it must be gone at the end.
func (lc *LeakCheck) TrackLink(name string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.tracked = append(lc.tracked, name)
}

// TrackProcess names a process the test started (a pause process, say): it
// must have exited and been reaped at the end.
func (lc *LeakCheck) TrackProcess(pid int) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.pids = append(lc.pids, pid)
}

// Leaked reports what is left now, without repairing it; "" means clean.
// Tests call it to check a midway state (after a Destroy, say).
func (lc *LeakCheck) Leaked() string { return lc.check(false) }

func (lc *LeakCheck) check(repair bool) string {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	var msg strings.Builder
	fail := func(err error) { msg.WriteString("\n  check failed: " + err.Error()) }

	mounts, err := lc.mountPoints()
	if err != nil {
		fail(err)
	}
	leakedMounts := newItems(lc.mounts, keys(mounts))
	msg.WriteString(report("mounts", leakedMounts))

	pins, err := lc.pinEntries()
	if err != nil {
		fail(err)
	}
	leakedPins := newItems(lc.pins, keys(pins))
	msg.WriteString(report("netns pins", leakedPins))

	links, err := lc.linkNames()
	if err != nil {
		fail(err)
	}
	leakedLinks := newItems(lc.links, keys(links))
	for _, name := range lc.tracked {
		if linkExists(name) && !slices.Contains(leakedLinks, name) {
			leakedLinks = append(leakedLinks, name)
		}
	}
	msg.WriteString(report("links", leakedLinks))

	var alive []string
	for _, pid := range lc.pids {
		if processExists(pid) {
			alive = append(alive, itoa(pid))
		}
	}
	msg.WriteString(report("processes", alive))

	cgroups, err := lc.cgroupsBelow()
	if err != nil {
		fail(err)
	}
	msg.WriteString(report("cgroups", cgroups))
	if now := nodeDevNull(); now != lc.devNull {
		// A runtime handed it as a container's stdio may chown it (crun
		// before 1.23 does, to a user namespace's root).
		msg.WriteString("\n  the node's /dev/null changed: was " + lc.devNull + ", is " + now)
	}

	if repair {
		// Undo mounts first (deepest first) so the file walk and the
		// test's own RemoveAll can see and remove what is under them.
		sortDeepestFirst(leakedMounts)
		for _, m := range leakedMounts {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
		for _, p := range leakedPins {
			_ = unix.Unmount(p, unix.MNT_DETACH)
			_ = os.Remove(p)
		}
		for _, l := range leakedLinks {
			deleteLink(l)
		}
		for _, p := range alive {
			killProcess(p)
		}
		sortDeepestFirst(cgroups)
		for _, c := range cgroups {
			removeCgroupDir(c)
		}
	}

	files, err := lc.walk()
	if err != nil {
		fail(err)
	}
	var leakedFiles []string
	for _, f := range newItems(lc.files, keys(files)) {
		if underAny(f, lc.opts.Ignore) {
			continue
		}
		if slices.Contains(lc.opts.Skeleton, f) {
			if st, err := os.Lstat(f); err == nil && st.IsDir() {
				continue
			}
		}
		leakedFiles = append(leakedFiles, f)
	}
	msg.WriteString(report("files", leakedFiles))
	return msg.String()
}

// cgroupsBelow lists the cgroup directories below the test's cgroup
// parent, in every hierarchy.
func (lc *LeakCheck) cgroupsBelow() ([]string, error) {
	if lc.opts.CgroupParent == "" {
		return nil, nil
	}
	dirs, err := CgroupDirs(lc.opts.CgroupParent)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if e.IsDir() && p != d {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// removeCgroupDir kills what is in a leaked cgroup and removes it (test
// repair only).
func removeCgroupDir(dir string) {
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		for _, pid := range strings.Fields(string(b)) {
			killProcess(pid)
		}
	}
	_ = unix.Rmdir(dir)
}

func (lc *LeakCheck) roots() []string {
	r := append([]string(nil), lc.opts.Roots...)
	if lc.opts.NetnsDir != "" {
		r = append(r, filepath.Clean(lc.opts.NetnsDir))
	}
	return r
}

// mountPoints lists the mount points under the test's roots.
func (lc *LeakCheck) mountPoints() (map[string]bool, error) {
	roots := lc.roots()
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return !underAny(i.Mountpoint, roots), false
	})
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(infos))
	for _, i := range infos {
		m[i.Mountpoint] = true
	}
	return m, nil
}

// walk lists every path under the roots. A leak check unmounts leaked
// mounts before it walks, so what it finds is on the roots' own file system.
func (lc *LeakCheck) walk() (map[string]bool, error) {
	m := map[string]bool{}
	for _, root := range lc.opts.Roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			m[p] = true
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return m, nil
}

func (lc *LeakCheck) pinEntries() (map[string]bool, error) {
	m := map[string]bool{}
	if lc.opts.NetnsDir == "" {
		return m, nil
	}
	ents, err := os.ReadDir(lc.opts.NetnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range ents {
		m[filepath.Join(lc.opts.NetnsDir, e.Name())] = true
	}
	return m, nil
}

func (lc *LeakCheck) linkNames() (map[string]bool, error) {
	m := map[string]bool{}
	if len(lc.opts.LinkPrefixes) == 0 {
		return m, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, i := range ifs {
		for _, p := range lc.opts.LinkPrefixes {
			if strings.HasPrefix(i.Name, p) {
				m[i.Name] = true
			}
		}
	}
	return m, nil
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

func processExists(pid int) bool {
	// A zombie still has /proc/PID; it is a leak too (nobody reaped it).
	_, err := os.Stat("/proc/" + itoa(pid))
	return err == nil
}

// nodeDevNull describes the node's /dev/null: its kind, device, mode and
// owner.
func nodeDevNull() string {
	var st unix.Stat_t
	if err := unix.Lstat("/dev/null", &st); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("mode %o device %d,%d owner %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Uid, st.Gid)
}
