package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/nsthread"
)

const errBusy = unix.EBUSY

func create(dir, path string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netns: pin dir: %w", err)
	}
	if err := testHook("mount"); err != nil {
		return err
	}
	err := nsthread.Pin(nsthread.Net, path, func() error {
		if err := testHook("loopback"); err != nil {
			return err
		}
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("netns: %s: %w", path, ErrExist)
	}
	return fmt.Errorf("netns: %w", err)
}

// failAt, set only by tests, makes New fail at a stage ("mount": before
// the pin is made; "loopback": after the namespace is pinned).
var failAt func(stage string) error

func testHook(stage string) error {
	if failAt == nil {
		return nil
	}
	return failAt(stage)
}

// loopbackUp sets IFF_UP on lo in the calling thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: set flags: %w", err)
	}
	return nil
}

// nsErr turns nsthread's errors into the package's.
func nsErr(err error) error {
	if errors.Is(err, nsthread.ErrWrongKind) {
		return fmt.Errorf("netns: %w: %w", err, ErrNotNetNS)
	}
	return fmt.Errorf("netns: %w", err)
}

func check(path string) error {
	fd, err := nsthread.Open(nsthread.Net, path)
	if err != nil {
		return nsErr(err)
	}
	return unix.Close(fd)
}

func do(path string, fn func() error) error {
	// fn's own error comes back as it is.
	var fnErr error
	err := nsthread.Run(nsthread.Net, path, func() error { fnErr = fn(); return nil })
	if err != nil {
		return errors.Join(fnErr, nsErr(err))
	}
	return fnErr
}

func inode(path string) (uint64, error) {
	ino, err := nsthread.Inode(path)
	if err != nil {
		return 0, fmt.Errorf("netns: %w", err)
	}
	return ino, nil
}

func remove(path string) error {
	if err := nsthread.Remove(path); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("netns: %w (%w)", err, ErrBusy)
		}
		return fmt.Errorf("netns: %w", err)
	}
	return nil
}

func list(dir string) ([]Pin, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("netns: list %s: %w", dir, err)
	}
	pins := make([]Pin, 0, len(ents))
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		pins = append(pins, Pin{Path: p, Live: nsthread.Live(p)})
	}
	return pins, nil
}

// createInUserNS makes a user namespace and a network namespace it owns,
// in a helper process cloned into both (os/exec writes the mappings
// before the helper execs), pins both from /proc/<helper>/ns, kills the
// helper, and brings lo up.
func createInUserNS(dir, path string, u UserNS) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netns: pin dir: %w", err)
	}
	for _, pin := range []string{path, u.Pin} {
		if err := nsthread.PinFile(pin); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("netns: %s: %w", pin, ErrExist)
			}
			return fmt.Errorf("netns: %w", err)
		}
		defer func() {
			if err != nil {
				_ = nsthread.Remove(pin)
			}
		}()
	}
	ids := func(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, len(ms))
		for i, m := range ms {
			out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
		}
		return out
	}
	errc := make(chan error, 1)
	go func() {
		// The helper's parent-death signal follows this thread: keep it
		// alive until the helper is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(u.Helper, u.HelperArgs...)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:                 unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
			UidMappings:                ids(u.UIDs),
			GidMappings:                ids(u.GIDs),
			GidMappingsEnableSetgroups: true,
			Pdeathsig:                  syscall.SIGKILL,
		}
		if err := cmd.Start(); err != nil {
			errc <- fmt.Errorf("netns: user namespace helper %s: %w", u.Helper, err)
			return
		}
		proc := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/"
		var err error
		if err = testHook("userns"); err == nil {
			err = unix.Mount(proc+"user", u.Pin, "", unix.MS_BIND, "")
		}
		if err == nil {
			err = unix.Mount(proc+"net", path, "", unix.MS_BIND, "")
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil {
			err = fmt.Errorf("netns: pin the user namespace and its network namespace: %w", err)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return err
	}
	if err := do(path, loopbackUp); err != nil {
		return fmt.Errorf("netns: %s: %w", path, err)
	}
	return nil
}
