package cgroupdir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/pidfd"
)

func remove(ctx context.Context, dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
		return fmt.Errorf("cgroupdir: %q is not a cgroup below a hierarchy's root", dir)
	}
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (bool, bool) {
		return i.FSType != "cgroup" && i.FSType != "cgroup2", false
	})
	if err != nil {
		return fmt.Errorf("cgroupdir: %w", err)
	}
	var paths []string
	for _, i := range infos {
		paths = append(paths, filepath.Join(i.Mountpoint, dir))
	}
	busy, err := rmdirAll(paths)
	if len(busy) == 0 || err != nil {
		return err
	}
	if err := killAll(ctx, busy); err != nil {
		return err
	}
	busy, err = rmdirAll(busy)
	if len(busy) > 0 {
		return fmt.Errorf("cgroupdir: rmdir %s: %w", strings.Join(busy, ", "), ErrBusy)
	}
	return err
}

// rmdirAll removes the directories that exist and returns those that are
// busy.
func rmdirAll(paths []string) (busy []string, err error) {
	var errs []error
	for _, p := range paths {
		switch err := unix.Rmdir(p); {
		case err == nil, errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOTEMPTY):
			busy = append(busy, p)
		default:
			errs = append(errs, fmt.Errorf("cgroupdir: rmdir %s: %w", p, err))
		}
	}
	return busy, errors.Join(errs...)
}

// killAll kills the processes in the cgroups and waits until they have
// exited (a zombie holds no cgroup), or ctx ends.
func killAll(ctx context.Context, dirs []string) error {
	seen := map[int]bool{}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue // gone meanwhile, or no procs file (a child cgroup's parent)
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				seen[pid] = true
			}
		}
	}
	for pid := range seen {
		f, err := pidfd.Open(pid)
		if errors.Is(err, unix.ESRCH) {
			continue // exited
		}
		if err != nil {
			return fmt.Errorf("cgroupdir: kill %d: %w", pid, err)
		}
		err = pidfd.Kill(ctx, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("cgroupdir: kill %d: %w", pid, err)
		}
	}
	return nil
}
