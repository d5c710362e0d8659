package nspin

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/nsthread"
	"github.com/podsmith/podsmith/internal/platform"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/spec"
)

// ErrNotSupported is returned on systems other than Linux.
var ErrNotSupported = platform.ErrNotSupported

var (
	// ErrExist means a pin already exists at the path; New* never
	// overwrite one. It matches fs.ErrExist as well.
	ErrExist = fmt.Errorf("nspin: pin already exists: %w", fs.ErrExist)
	// ErrWrongKind means a path is not a namespace of the kind asked for
	// (a stale pin after a reboot is an empty regular file).
	ErrWrongKind = errors.New("nspin: not a namespace of that kind")
	// ErrSetup matches a *SetupError.
	ErrSetup = errors.New("nspin: namespace setup failed")
)

// Kind is the kind of namespace a pin holds.
type Kind = specs.LinuxNamespaceType

// The kinds nspin pins.
const (
	IPC Kind = specs.IPCNamespace
	UTS Kind = specs.UTSNamespace
)

func threadKind(k Kind) (nsthread.Kind, error) {
	switch k {
	case IPC:
		return nsthread.IPC, nil
	case UTS:
		return nsthread.UTS, nil
	}
	return "", fmt.Errorf("nspin: %q is not a kind nspin pins (ipc, uts)", k)
}

// SetupError reports what could not be set inside a new namespace: a
// sysctl of an IPC namespace, the hostname of a UTS one. Nothing is left
// pinned.
type SetupError struct {
	Kind Kind
	What string // "hostname", or the sysctl's name
	Err  error
}

func (e *SetupError) Error() string {
	return fmt.Sprintf("nspin: %s namespace: set %s: %v", e.Kind, e.What, e.Err)
}

func (e *SetupError) Unwrap() error { return e.Err }

// Is makes a SetupError match ErrSetup.
func (e *SetupError) Is(target error) bool { return target == ErrSetup }

// NS is a pinned IPC or UTS namespace.
type NS struct {
	kind Kind
	path string
}

// NewUTS creates a UTS namespace with hostname set in it, pinned at
// dir/name (dir is created, mode 0755, if missing). On failure nothing is
// left behind.
func NewUTS(dir, name, hostname string) (*NS, error) {
	if hostname == "" || len(hostname) > 64 || strings.ContainsRune(hostname, 0) {
		return nil, &SetupError{Kind: UTS, What: "hostname", Err: fmt.Errorf("%q is not a hostname of 1 to 64 bytes", hostname)}
	}
	return create(UTS, dir, name, func() error {
		if err := sethostname(hostname); err != nil {
			return &SetupError{Kind: UTS, What: "hostname", Err: err}
		}
		return nil
	})
}

// NewIPC creates an IPC namespace with sysctls applied in it (IPC ones
// only, by their dotted or slashed names), pinned at dir/name. A sysctl
// of another namespace is refused before anything is made. On failure
// nothing is left behind.
func NewIPC(dir, name string, sysctls map[string]string) (*NS, error) {
	norm := make(map[string]string, len(sysctls))
	for k, v := range sysctls {
		n := spec.NormalizeSysctlName(k)
		if spec.SysctlNamespace(n) != specs.IPCNamespace {
			return nil, &SetupError{Kind: IPC, What: k, Err: errors.New("not an IPC namespace sysctl")}
		}
		norm[n] = v
	}
	return create(IPC, dir, name, func() error {
		for _, k := range slices.Sorted(maps.Keys(norm)) {
			if err := nsthread.WriteSysctl(k, norm[k]); err != nil {
				return &SetupError{Kind: IPC, What: k, Err: err}
			}
		}
		return nil
	})
}

func create(k Kind, dir, name string, setup func() error) (*NS, error) {
	tk, err := threadKind(k)
	if err != nil {
		return nil, err
	}
	if err := netns.ValidateName(name); err != nil {
		return nil, fmt.Errorf("nspin: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("nspin: pin dir: %w", err)
	}
	p := filepath.Join(dir, name)
	if err := nsthread.Pin(tk, p, setup); err != nil {
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			return nil, ErrNotSupported
		case errors.Is(err, fs.ErrExist):
			return nil, fmt.Errorf("nspin: %s: %w", p, ErrExist)
		case errors.Is(err, ErrSetup):
			return nil, err
		}
		return nil, fmt.Errorf("nspin: %w", err)
	}
	return &NS{kind: k, path: p}, nil
}

// Open returns the namespace of kind k pinned at path, after checking that
// it is one (ErrWrongKind when not).
func Open(k Kind, path string) (*NS, error) {
	tk, err := threadKind(k)
	if err != nil {
		return nil, err
	}
	fd, err := nsthread.Open(tk, path)
	if err != nil {
		return nil, nsErr(err)
	}
	closeFD(fd)
	return &NS{kind: k, path: path}, nil
}

func nsErr(err error) error {
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return ErrNotSupported
	case errors.Is(err, nsthread.ErrWrongKind):
		return fmt.Errorf("nspin: %w: %w", err, ErrWrongKind)
	}
	return fmt.Errorf("nspin: %w", err)
}

// Path is the pin's path: what a container's spec joins.
func (n *NS) Path() string { return n.path }

// Kind is the namespace's kind.
func (n *NS) Kind() Kind { return n.kind }

// Do runs fn on an OS thread inside the namespace (see the package doc for
// the thread rules) and returns fn's error.
func (n *NS) Do(fn func() error) error {
	tk, err := threadKind(n.kind)
	if err != nil {
		return err
	}
	var fnErr error
	if err := nsthread.Run(tk, n.path, func() error { fnErr = fn(); return nil }); err != nil {
		return errors.Join(fnErr, nsErr(err))
	}
	return fnErr
}

// Inode returns the namespace's inode number, its identity.
func (n *NS) Inode() (uint64, error) {
	ino, err := nsthread.Inode(n.path)
	if err != nil {
		return 0, nsErr(err)
	}
	return ino, nil
}

// Remove unpins the namespace; removing twice is fine.
func (n *NS) Remove() error { return Remove(n.path) }

// Remove unpins the namespace pinned at path (lazy unmount, then unlink).
// A path that is not mounted or does not exist is success.
func Remove(path string) error {
	if err := nsthread.Remove(path); err != nil {
		return nsErr(err)
	}
	return nil
}
