package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/peel"
)

const errBusy = unix.EBUSY

// threadNS is the calling thread's own network namespace file. /proc/self
// would be the thread group leader's, which is not ours once we unshare.
const threadNS = "/proc/thread-self/ns/net"

// onLockedThread runs fn in a new goroutine locked to its OS thread,
// entered into a network namespace by enter (which returns a restore
// function that switches the thread back). If restoring fails, the thread
// stays locked and dies with the goroutine.
func onLockedThread(enter func() (restore func() error, err error), fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := enter()
		if err != nil {
			if restore == nil {
				runtime.UnlockOSThread()
			} else if rerr := restore(); rerr == nil {
				runtime.UnlockOSThread()
			}
			errc <- err
			return
		}
		err = fn()
		if rerr := restore(); rerr != nil {
			// Leave the thread locked: the runtime kills it when this
			// goroutine returns, rather than reuse it in the wrong
			// namespace.
			errc <- errors.Join(err, fmt.Errorf("netns: restore thread namespace: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// restorer opens the thread's current namespace and returns a function that
// switches the thread back to it (and closes it).
func restorer() (func() error, error) {
	orig, err := unix.Open(threadNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netns: open %s: %w", threadNS, err)
	}
	return func() error {
		defer unix.Close(orig)
		return unix.Setns(orig, unix.CLONE_NEWNET)
	}, nil
}

func create(dir, path string) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netns: pin dir: %w", err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("netns: %s: %w", path, ErrExist)
		}
		return fmt.Errorf("netns: create pin: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	_ = unix.Close(fd)
	defer func() {
		if err != nil {
			_ = remove(path)
		}
	}()
	enter := func() (func() error, error) {
		restore, err := restorer()
		if err != nil {
			return nil, err
		}
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return restore, fmt.Errorf("netns: unshare: %w", err)
		}
		return restore, nil
	}
	return onLockedThread(enter, func() error {
		if err := testHook("mount"); err != nil {
			return err
		}
		if err := unix.Mount(threadNS, path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("netns: pin %s: %w", path, err)
		}
		if err := testHook("loopback"); err != nil {
			return err
		}
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("netns: %s: %w", path, err)
		}
		return nil
	})
}

// failAt, set only by tests, makes New fail at a stage ("mount": after the
// pin file is made; "loopback": after the namespace is pinned).
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

// nsfsMagic is NSFS_MAGIC from linux/magic.h.
const nsfsMagic = 0x6e736673

// nsGetNSType is NS_GET_NSTYPE from linux/nsfs.h: _IO(0xb7, 0x3).
const nsGetNSType = 0xb703

func openNS(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("netns: open %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netns: statfs %s: %w", path, err)
	}
	if st.Type != nsfsMagic {
		unix.Close(fd)
		return -1, fmt.Errorf("netns: %s: %w", path, ErrNotNetNS)
	}
	typ, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetNSType, 0)
	if errno != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("netns: %s: namespace type: %w", path, errno)
	}
	if typ != unix.CLONE_NEWNET {
		unix.Close(fd)
		return -1, fmt.Errorf("netns: %s is another kind of namespace: %w", path, ErrNotNetNS)
	}
	return fd, nil
}

func check(path string) error {
	fd, err := openNS(path)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func do(path string, fn func() error) error {
	fd, err := openNS(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	enter := func() (func() error, error) {
		restore, err := restorer()
		if err != nil {
			return nil, err
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return restore, fmt.Errorf("netns: enter %s: %w", path, err)
		}
		return restore, nil
	}
	return onLockedThread(enter, fn)
}

func inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("netns: stat %s: %w", path, err)
	}
	return st.Ino, nil
}

func remove(path string) error {
	if err := peel.Unmount(path); err != nil {
		if errors.Is(err, peel.ErrStillMounted) {
			return fmt.Errorf("netns: %w (%w)", err, ErrBusy)
		}
		return fmt.Errorf("netns: %w", err)
	}
	if err := os.Remove(path); err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("netns: remove %s: %w", path, ErrBusy)
		default:
			return fmt.Errorf("netns: remove %s: %w", path, err)
		}
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
		var st unix.Statfs_t
		live := unix.Statfs(p, &st) == nil && st.Type == nsfsMagic
		pins = append(pins, Pin{Path: p, Live: live})
	}
	return pins, nil
}
