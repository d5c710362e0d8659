package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/platform"
)

// ErrNotSupported is returned on systems other than Linux.
var ErrNotSupported = platform.ErrNotSupported

var (
	// ErrInvalidName is matched by a *NameError.
	ErrInvalidName = errors.New("netns: invalid name")
	// ErrExist means a pin already exists at the path; New never
	// overwrites one. It matches fs.ErrExist as well.
	ErrExist = fmt.Errorf("netns: pin already exists: %w", fs.ErrExist)
	// ErrBusy means a pin could not be removed because it is still in use
	// (mounted in another mount namespace, say). It matches EBUSY too.
	ErrBusy = fmt.Errorf("netns: pin busy: %w", errBusy)
	// ErrNotNetNS means a path is not a network namespace (a stale pin
	// after a reboot is an empty regular file).
	ErrNotNetNS = errors.New("netns: not a network namespace")
)

// maxNameLen is the longest pin name (a file name).
const maxNameLen = 255

// NameError reports an unusable pin name.
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("netns: invalid name %q: %s", e.Name, e.Reason)
}

// Is makes a NameError match ErrInvalidName.
func (e *NameError) Is(target error) bool { return target == ErrInvalidName }

// ValidateName checks a pin name: not empty, not "." or "..", no "/" or NUL,
// at most 255 bytes.
func ValidateName(name string) error {
	switch {
	case name == "":
		return &NameError{Name: name, Reason: "empty"}
	case name == "." || name == "..":
		return &NameError{Name: name, Reason: "not a file name"}
	case strings.ContainsRune(name, '/'):
		return &NameError{Name: name, Reason: `contains "/"`}
	case strings.ContainsRune(name, 0):
		return &NameError{Name: name, Reason: "contains NUL"}
	case len(name) > maxNameLen:
		return &NameError{Name: name, Reason: fmt.Sprintf("longer than %d bytes", maxNameLen)}
	}
	return nil
}

// NetNS is a pinned network namespace.
type NetNS struct {
	path string
}

// New creates a network namespace, brings its loopback interface up and
// pins it at dir/name. dir is created if missing (mode 0755). A pin that
// already exists is ErrExist. On failure nothing is left behind.
func New(dir, name string) (*NetNS, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, name)
	if err := create(dir, p); err != nil {
		return nil, err
	}
	return &NetNS{path: p}, nil
}

// Open returns the namespace pinned at path, after checking that it is a
// live network namespace (ErrNotNetNS when not).
func Open(path string) (*NetNS, error) {
	if err := check(path); err != nil {
		return nil, err
	}
	return &NetNS{path: path}, nil
}

// Path is the pin's path: what runtimes and CNI plugins are given.
func (n *NetNS) Path() string { return n.path }

// Do runs fn with the calling goroutine's work moved to an OS thread inside
// the namespace (see the package doc for the thread rules) and returns fn's
// error.
func (n *NetNS) Do(fn func() error) error { return do(n.path, fn) }

// Inode returns the namespace's inode number, its identity: two pins of the
// same namespace have the same inode.
func (n *NetNS) Inode() (uint64, error) { return inode(n.path) }

// Remove unpins the namespace (lazy unmount, then unlink). The namespace
// itself ends when nothing else holds it. Removing twice is fine.
func (n *NetNS) Remove() error { return Remove(n.path) }

// Remove unpins the namespace pinned at path. A path that is not mounted or
// does not exist is success; a pin still in use elsewhere is ErrBusy.
func Remove(path string) error { return remove(path) }

// Pin is an entry of a pin directory.
type Pin struct {
	Path string
	// Live is true when a network namespace is mounted on the pin; false
	// for a stale pin file (after a reboot, or a lazy unmount).
	Live bool
}

// List returns the pins in dir (every non-directory entry), live or not, in
// name order. A missing dir has no pins.
func List(dir string) ([]Pin, error) { return list(dir) }

// UserNS is a user namespace for NewInUserNS to create, pin and give the
// new network namespace to.
type UserNS struct {
	// Pin is where the user namespace is pinned (a new file).
	Pin string
	// UIDs and GIDs are its mappings.
	UIDs, GIDs []specs.LinuxIDMapping
	// Helper is a static binary, with HelperArgs, that waits until it is
	// killed (a pause): a helper process runs it in the new namespaces
	// while they are pinned, since a Go process, having threads, cannot
	// enter a new user namespace itself. It runs as the caller, not as a
	// mapped user.
	Helper     string
	HelperArgs []string
}

// NewInUserNS is New for a network namespace owned by a new user
// namespace: it creates both (with the mappings), pins the user namespace
// at u.Pin and the network namespace at dir/name, and brings lo up. Root
// in the user namespace then holds CAP_NET_ADMIN over this network
// namespace and over nothing of the node's. On failure neither pin is
// left.
func NewInUserNS(dir, name string, u UserNS) (*NetNS, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if len(u.UIDs) == 0 || len(u.GIDs) == 0 || u.Pin == "" || u.Helper == "" {
		return nil, errors.New("netns: a user namespace needs a pin, UID and GID mappings and a helper binary")
	}
	p := filepath.Join(dir, name)
	if err := createInUserNS(dir, p, u); err != nil {
		return nil, err
	}
	return &NetNS{path: p}, nil
}
