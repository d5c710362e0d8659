package cgroups

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Manager is a cgroup manager kind, as runc/crun/CRI-O know them.
type Manager string

const (
	// Cgroupfs is the manager that writes to the cgroup filesystem
	// directly; its parents are absolute paths such as "/kubepods".
	Cgroupfs Manager = "cgroupfs"
	// Systemd is the manager that asks systemd for a scope unit; its
	// parents are slices such as "kubepods.slice".
	Systemd Manager = "systemd"
)

const (
	sliceSuffix = ".slice"
	rootSlice   = "-.slice"
	// maxUnitName is systemd's limit on a unit name, and the kernel's
	// limit on a file name (NAME_MAX): no cgroup directory name is longer.
	maxUnitName = 255
	// maxParent is PATH_MAX, the longest cgroupfs parent accepted.
	maxParent = 4096
	// maxName is the longest prefix or id accepted.
	maxName = 128
)

// ParseManager returns the manager named exactly "systemd" or "cgroupfs".
// Any other string, including "", gives a [*ManagerError].
func ParseManager(s string) (Manager, error) {
	switch m := Manager(s); m {
	case Systemd, Cgroupfs:
		return m, nil
	}
	return "", &ManagerError{Value: s}
}

// String returns the manager's name, as ParseManager accepts it.
func (m Manager) String() string { return string(m) }

// DefaultParent returns podsmith's cgroup parent for the manager:
// "podsmith.slice" for systemd, "/podsmith" for cgroupfs, and "" for an
// unknown manager.
func DefaultParent(m Manager) string {
	switch m {
	case Systemd:
		return "podsmith.slice"
	case Cgroupfs:
		return "/podsmith"
	}
	return ""
}

// ValidateParent checks that parent is a valid cgroup parent for the manager.
//
// With systemd, the parent's base name (path.Base, so both "kubepods.slice"
// and "/kubepods.slice/kubepods-burstable.slice" are accepted) must be a
// slice that [ExpandSlice] accepts and that has no ':' (the separator of the
// systemd cgroupsPath). With cgroupfs, the parent must be a clean absolute
// path of at most 4096 bytes without ".." elements, whitespace or control
// characters, and its base name must not end in ".slice"; "/" is accepted.
//
// An empty parent is an error: callers that want the default substitute
// [DefaultParent]. The error is a [*ParentError], or a [*ManagerError] for an
// unknown manager.
func ValidateParent(m Manager, parent string) error {
	if _, err := ParseManager(string(m)); err != nil {
		return err
	}
	fail := func(format string, args ...any) *ParentError {
		return &ParentError{Manager: m, Parent: parent, Reason: fmt.Sprintf(format, args...)}
	}
	if parent == "" {
		return fail("is empty (the %s cgroup manager needs a parent like %q; podsmith's default is %q)", m, example(m), DefaultParent(m))
	}
	if len(parent) > maxParent {
		return fail("is %d bytes long (the %s cgroup manager accepts at most %d)", len(parent), m, maxParent)
	}
	for _, r := range parent {
		if r < 0x20 || r == 0x7f || unicode.IsSpace(r) {
			return fail("contains %q (the %s cgroup manager accepts no whitespace or control characters)", r, m)
		}
	}
	base := path.Base(parent)
	isSlice := strings.HasSuffix(base, sliceSuffix)
	if m == Systemd {
		if !isSlice {
			return fail("is not a systemd slice (the systemd cgroup manager needs a parent like %q); use a .slice parent or the cgroupfs manager", example(m))
		}
		if _, err := ExpandSlice(base); err != nil {
			var se *SliceError
			errors.As(err, &se)
			e := fail("is not a valid systemd slice for the systemd cgroup manager: %s", se.Reason)
			e.cause = err
			return e
		}
		if strings.Contains(base, ":") {
			return fail("contains ':', which the systemd cgroup manager uses to separate the fields of a cgroupsPath \"slice:prefix:id\"; use a slice name without ':'")
		}
		return nil
	}
	if isSlice {
		return fail("is a systemd slice but the cgroup manager is cgroupfs; use an absolute path like %q or the systemd manager", example(m))
	}
	if !path.IsAbs(parent) {
		return fail("is not an absolute path (the cgroupfs cgroup manager needs a parent like %q)", example(m))
	}
	for _, elem := range strings.Split(parent, "/") {
		if elem == ".." {
			return fail("contains a \"..\" element (the cgroupfs cgroup manager needs a parent like %q)", example(m))
		}
	}
	if clean := path.Clean(parent); clean != parent {
		return fail("is not a clean path (the cgroupfs cgroup manager needs %q)", clean)
	}
	return nil
}

// example returns a parent to show in error messages.
func example(m Manager) string {
	if m == Systemd {
		return "kubepods.slice"
	}
	return "/kubepods"
}

// ExpandSlice returns the cgroup path of a systemd slice, relative to the
// root of the cgroup hierarchy, as runc does: "a-b-c.slice" is
// "/a.slice/a-b.slice/a-b-c.slice" and the root slice "-.slice" is "/".
//
// The slice must end in ".slice" with a name before it, contain no '/', and
// have no empty "-"-separated components ("a--b.slice", "-a.slice" and
// "a-.slice" are refused). Stricter than runc, it must also be a valid
// systemd unit name: at most 255 bytes of ASCII letters, digits, ':', '-',
// '_', '.' and '\\'. Every error is a [*SliceError].
func ExpandSlice(slice string) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		return "", &SliceError{Slice: slice, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case slice == "":
		return fail("is empty")
	case len(slice) > maxUnitName:
		return fail("is %d bytes long (systemd accepts at most %d)", len(slice), maxUnitName)
	case !strings.HasSuffix(slice, sliceSuffix):
		return fail("does not end in %q", sliceSuffix)
	case slice == sliceSuffix:
		return fail("has no name before %q", sliceSuffix)
	case strings.Contains(slice, "/"):
		return fail("contains '/' (give the slice's own name, like \"kubepods-burstable.slice\", not a path)")
	}
	if c, bad := badChar(slice, unitChar); bad {
		return fail("contains %q, which systemd does not allow in a unit name (only ASCII letters, digits, ':', '-', '_', '.' and '\\')", c)
	}
	if slice == rootSlice {
		return "/", nil
	}
	var b strings.Builder
	prefix := ""
	for _, component := range strings.Split(strings.TrimSuffix(slice, sliceSuffix), "-") {
		if component == "" {
			return fail("has an empty component (a leading or trailing '-', or \"--\"); a valid name looks like \"a-b-c.slice\"")
		}
		prefix += component
		b.WriteString("/" + prefix + sliceSuffix)
		prefix += "-"
	}
	return b.String(), nil
}

// badChar returns the first character of s (a whole UTF-8 sequence, or one
// invalid byte) with a byte that ok refuses.
func badChar(s string, ok func(byte) bool) (string, bool) {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			_, size := utf8.DecodeRuneInString(s[i:])
			return s[i : i+size], true
		}
	}
	return "", false
}

// unitChar reports whether systemd allows c in a unit name.
func unitChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte(":-_.\\", c) >= 0
}

// nameChar reports whether c is allowed in a prefix or an id.
func nameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

// validateName checks a prefix or id (field names which).
func validateName(field, value string) error {
	fail := func(format string, args ...any) error {
		return &NameError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case value == "":
		return fail("is empty")
	case len(value) > maxName:
		return fail("is %d bytes long (at most %d)", len(value), maxName)
	case value == "." || value == "..":
		return fail("is %q, which names a directory, not a cgroup", value)
	}
	if c, bad := badChar(value, nameChar); bad {
		return fail("contains %q (only ASCII letters, digits, '-', '_' and '.')", c)
	}
	return nil
}

// resolve validates its arguments for CgroupsPath and Dir and returns the
// parent to use (the default when parent is "").
func resolve(m Manager, parent, prefix, id string) (string, error) {
	if _, err := ParseManager(string(m)); err != nil {
		return "", err
	}
	if parent == "" {
		parent = DefaultParent(m)
	}
	if err := ValidateParent(m, parent); err != nil {
		return "", err
	}
	if err := validateName("prefix", prefix); err != nil {
		return "", err
	}
	if err := validateName("id", id); err != nil {
		return "", err
	}
	leaf := prefix + "-" + id
	if m == Systemd {
		if strings.HasSuffix(id, sliceSuffix) {
			// runc would take "<prefix>:<id>.slice" for a slice, not a scope.
			return "", &NameError{Field: "id", Value: id, Reason: "ends in \".slice\", which the systemd cgroup manager would take for a slice"}
		}
		leaf += ".scope"
	}
	if len(leaf) > maxUnitName {
		return "", &NameError{Field: "id", Value: id, Reason: fmt.Sprintf("makes, with the prefix, the %d-byte cgroup name %q (at most %d)", len(leaf), leaf, maxUnitName)}
	}
	return parent, nil
}

// CgroupsPath returns the OCI linux.cgroupsPath of the sandbox id, for the
// manager, under parent, with the runtime's unit or directory name prefix
// (podsmith uses "podsmith", CRI-O "crio").
//
// With systemd it is "<slice>:<prefix>:<id>", where slice is the parent's
// base name, e.g. "kubepods-burstable.slice:podsmith:<id>". With cgroupfs
// it is "<parent>/<prefix>-<id>", e.g. "/kubepods/podsmith-<id>" ("/<prefix>-<id>"
// under "/").
//
// An empty parent means [DefaultParent](m). The parent is checked by
// [ValidateParent]; prefix and id must be 1 to 128 bytes of ASCII letters,
// digits, '-', '_' and '.', not "." or "..", and together must give a cgroup
// name of at most 255 bytes; with systemd the id may not end in ".slice".
// Errors are [*ManagerError], [*ParentError] or [*NameError].
func CgroupsPath(m Manager, parent, prefix, id string) (string, error) {
	parent, err := resolve(m, parent, prefix, id)
	if err != nil {
		return "", err
	}
	if m == Systemd {
		return path.Base(parent) + ":" + prefix + ":" + id, nil
	}
	return path.Join(parent, prefix+"-"+id), nil
}

// Dir returns the cgroup directory that [CgroupsPath] resolves to, as an
// absolute path relative to the root of the cgroup hierarchy (on cgroup v2,
// relative to /sys/fs/cgroup). With cgroupfs it is the cgroupsPath itself;
// with systemd it is the expanded slice followed by the scope,
// "<ExpandSlice(slice)>/<prefix>-<id>.scope". Arguments, the default parent
// and errors are as for CgroupsPath.
func Dir(m Manager, parent, prefix, id string) (string, error) {
	parent, err := resolve(m, parent, prefix, id)
	if err != nil {
		return "", err
	}
	if m == Systemd {
		slice, err := ExpandSlice(path.Base(parent))
		if err != nil {
			return "", err // unreachable: ValidateParent expanded it
		}
		return path.Join(slice, prefix+"-"+id+".scope"), nil
	}
	return path.Join(parent, prefix+"-"+id), nil
}
