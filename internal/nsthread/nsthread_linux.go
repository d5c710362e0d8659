package nsthread

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/peel"
)

// flag is the kind's CLONE_NEW* flag (also what NS_GET_NSTYPE returns).
func (k Kind) flag() (int, error) {
	switch k {
	case Net:
		return unix.CLONE_NEWNET, nil
	case IPC:
		return unix.CLONE_NEWIPC, nil
	case UTS:
		return unix.CLONE_NEWUTS, nil
	}
	return 0, fmt.Errorf("unknown namespace kind %q", string(k))
}

// threadFile is the calling thread's own namespace file of the kind.
// /proc/self would be the thread group leader's, which is not ours once we
// unshare.
func (k Kind) threadFile() string { return "/proc/thread-self/ns/" + string(k) }

// Run runs fn in a new goroutine locked to its OS thread, moved into a
// namespace of kind k: a new one when path is "", else the one at path
// (checked to be of kind k). The thread is moved back afterwards.
func Run(k Kind, path string, fn func() error) error {
	flag, err := k.flag()
	if err != nil {
		return err
	}
	target := -1
	if path != "" {
		if target, err = Open(k, path); err != nil {
			return err
		}
		defer unix.Close(target)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open(k.threadFile(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open %s: %w", k.threadFile(), err)
			return
		}
		defer unix.Close(orig)
		if target >= 0 {
			err = unix.Setns(target, flag)
			if err != nil {
				err = fmt.Errorf("enter %s: %w", path, err)
			}
		} else if err = unix.Unshare(flag); err != nil {
			err = fmt.Errorf("unshare: %w", err)
		}
		if err == nil {
			err = fn()
		}
		if rerr := unix.Setns(orig, flag); rerr != nil {
			// Leave the thread locked: the runtime kills it when this
			// goroutine returns, rather than reuse it in the wrong
			// namespace.
			errc <- errors.Join(err, fmt.Errorf("restore thread namespace: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Pin creates a namespace of kind k, pins it at path (a new file, never
// an existing one: fs.ErrExist), then runs setup inside it (on the locked
// thread). On any failure nothing is left: no pin, and the namespace ends
// with the thread's hold on it.
func Pin(k Kind, path string, setup func() error) (err error) {
	if err := PinFile(path); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = Remove(path)
		}
	}()
	return Run(k, "", func() error {
		if err := unix.Mount(k.threadFile(), path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s: %w", path, err)
		}
		if setup == nil {
			return nil
		}
		return setup()
	})
}

// PinFile creates the empty file a namespace is bound on; one that exists
// is an error matching fs.ErrExist (a pin is never reused).
func PinFile(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return &os.PathError{Op: "create pin", Path: path, Err: err}
	}
	return unix.Close(fd)
}

// nsfsMagic is NSFS_MAGIC from linux/magic.h.
const nsfsMagic = 0x6e736673

// nsGetNSType is NS_GET_NSTYPE from linux/nsfs.h: _IO(0xb7, 0x3).
const nsGetNSType = 0xb703

// Open opens the namespace file at path (a pin, or /proc/PID/ns/...) and
// returns its descriptor, after checking that it is a namespace of kind k
// (ErrWrongKind when not).
func Open(k Kind, path string) (int, error) {
	flag, err := k.flag()
	if err != nil {
		return -1, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	if st.Type != nsfsMagic {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", path, ErrWrongKind)
	}
	typ, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetNSType, 0)
	if errno != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: namespace type: %w", path, errno)
	}
	if int(typ) != flag {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is another kind of namespace: %w", path, ErrWrongKind)
	}
	return fd, nil
}

// Remove unpins the pin at path: lazy unmounts, then unlink. A path that
// is not mounted or does not exist is success; a pin that stays mounted
// or cannot be unlinked because it is in use is EBUSY.
func Remove(path string) error {
	if err := peel.Unmount(path); err != nil {
		if errors.Is(err, peel.ErrStillMounted) {
			return fmt.Errorf("%w (%w)", err, unix.EBUSY)
		}
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Live reports whether a namespace is mounted on the pin at path.
func Live(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == nsfsMagic
}

// Inode is the namespace's inode number, its identity.
func Inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}

// WriteSysctls writes sysctls (dotted names) in sorted order, as the
// calling thread sees them: /proc/sys's IPC and network entries are those
// of the writing thread's namespaces (call it inside Run).
func WriteSysctls(sysctls map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(sysctls)) {
		if err := WriteSysctl(k, sysctls[k]); err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	return nil
}

// sysctlPath swaps a sysctl's separators: in the dotted form an
// interface's own dot is a slash ("net.ipv4.conf.eth0/100.forwarding"),
// as runc reads it.
var sysctlPath = strings.NewReplacer(".", "/", "/", ".")

// WriteSysctl writes one sysctl (dotted name), as WriteSysctls does.
func WriteSysctl(name, value string) error {
	p := filepath.Join("/proc/sys", sysctlPath.Replace(name))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
