package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
