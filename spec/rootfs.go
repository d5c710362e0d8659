package spec

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/internal/flock"
)

// PauseBinaryName is the pause binary's path inside the rootfs.
const PauseBinaryName = "/pause"

// ErrNoPauseBinary means no pause binary was given and none was found.
var ErrNoPauseBinary = errors.New("spec: no pause binary: install catatonit (Debian/Ubuntu: apt-get install catatonit) or pass a static pause binary")

// PauseBinaryError reports a pause binary that cannot be used.
type PauseBinaryError struct {
	Path   string
	Reason string
	Err    error
}

func (e *PauseBinaryError) Error() string {
	msg := fmt.Sprintf("spec: pause binary %s: %s", e.Path, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *PauseBinaryError) Unwrap() error { return e.Err }

// Is makes a PauseBinaryError match ErrInvalid.
func (e *PauseBinaryError) Is(target error) bool { return target == ErrInvalid }

// PauseOptions choose the pause binary.
type PauseOptions struct {
	// Binary is the path of a static pause binary. Empty means catatonit
	// found on PATH.
	Binary string
	// Args are the binary's arguments. Nil means "-P" (pause mode) for
	// catatonit and none for any other binary.
	Args []string
}

// BundleRootfs is root.path in a pause spec: the directory "rootfs" in the
// bundle, which the caller makes a read-only bind mount of the shared
// PauseRootfs.Path (mounts.BindReadOnly). A bundle must hold its rootfs
// (runtime-tools' validator refuses a root.path outside it) and runc
// refuses a symlinked one, so a bind mount is how every sandbox shares one
// rootfs without a copy.
const BundleRootfs = "rootfs"

// PauseRootfs is a prepared pause rootfs.
type PauseRootfs struct {
	// Path is the shared rootfs directory, to bind read-only at
	// <bundle>/rootfs.
	Path string
	// Args is the pause process's command line.
	Args []string
}

// Opt returns the options that point a spec at the rootfs: root.path
// BundleRootfs, read-only, and the pause command line.
func (r *PauseRootfs) Opt() Opt { return Compose(WithRoot(BundleRootfs, true), WithArgs(r.Args...)) }

// mountPoints are what the runtime mounts over inside a read-only rootfs:
// made here so that no runtime writes into the shared rootfs.
var (
	mountPointDirs  = []string{"proc", "sys", "dev", "etc"}
	mountPointFiles = []string{"etc/resolv.conf", "etc/hostname", "etc/hosts"}
)

// PreparePauseRootfs makes (once) the read-only rootfs that every pause
// container of a node shares, under dir: a directory named after the
// binary's content hash holding the static pause binary and the empty
// mount points. It is idempotent and safe when several processes race: the
// first to take a lock on dir builds the rootfs in a temporary directory,
// fsyncs it and renames it into place; the others then use it. A rootfs
// found there but not whole (its binary cut short by a crash, a mount
// point missing) is repaired in place, as sandboxes may have it bound.
func PreparePauseRootfs(dir string, opts PauseOptions) (*PauseRootfs, error) {
	bin, args, err := pauseBinary(opts)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, &PauseBinaryError{Path: bin, Reason: "cannot read it", Err: err}
	}
	if err := checkStatic(bin, data); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	final := filepath.Join(dir, "pause-"+hex.EncodeToString(sum[:8]))
	r := &PauseRootfs{Path: final, Args: append([]string{PauseBinaryName}, args...)}
	if intact(final, data) {
		return r, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spec: pause rootfs: %w", err)
	}
	// One maker at a time (per node, once per pause binary): under the
	// lock, a rootfs that is not whole can be replaced without pulling it
	// from under a process that just made it.
	unlock, err := flock.Dir(dir)
	if err != nil {
		return nil, fmt.Errorf("spec: pause rootfs: %w", err)
	}
	defer unlock()
	if intact(final, data) {
		return r, nil // made while this one waited
	}
	if st, err := os.Lstat(final); err == nil {
		if st.IsDir() {
			// There but not whole: a crash before its files reached the
			// disk, or a hand that edited it. Repaired in place, never
			// replaced: live bundles bind it as their rootfs, and would
			// keep the old tree, emptied.
			if err := repair(final, data); err != nil {
				return nil, fmt.Errorf("spec: pause rootfs: repair %s: %w", final, err)
			}
			return r, nil
		}
		// Not a directory: nothing can have bound it as a rootfs.
		if err := os.Remove(final); err != nil {
			return nil, fmt.Errorf("spec: pause rootfs: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(dir, ".pause-tmp-")
	if err != nil {
		return nil, fmt.Errorf("spec: pause rootfs: %w", err)
	}
	if err := populate(tmp, data); err != nil {
		removeTree(tmp)
		return nil, fmt.Errorf("spec: pause rootfs: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		removeTree(tmp)
		return nil, fmt.Errorf("spec: pause rootfs: %w", err)
	}
	// The rootfs outlives reboots: make the rename durable too.
	if err := atomicfile.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("spec: pause rootfs: %w", err)
	}
	return r, nil
}

// repair makes root a whole pause rootfs for binary again, in place: the
// missing mount points made, anything else in their place removed, and
// the binary, if it differs, replaced by rename (a pause process running
// the old file keeps it).
func repair(root string, binary []byte) (err error) {
	// Modes are changed only on directories opened without following a
	// symlink (fchmod on what was opened): a link planted here must not
	// open up (or close) what it points at.
	chmodDir := func(p string, mode os.FileMode) error {
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, fs.ErrNotExist) {
			return nil // not a directory: replaced below, or already
		}
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Chmod(mode)
	}
	if err := chmodDir(root, 0o755); err != nil {
		return err
	}
	defer func() {
		for _, d := range append(mountPointDirs, ".") {
			if cerr := chmodDir(filepath.Join(root, d), 0o555); err == nil {
				err = cerr
			}
		}
	}()
	// Left by a repair that crashed.
	for _, tmp := range repairTemps(root) {
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
	}
	for _, d := range mountPointDirs {
		p := filepath.Join(root, d)
		if st, err := os.Lstat(p); err == nil && st.IsDir() {
			continue
		} else if err == nil {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
	}
	if err := chmodDir(filepath.Join(root, "etc"), 0o755); err != nil {
		return err
	}
	for _, f := range mountPointFiles {
		p := filepath.Join(root, f)
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
			continue
		} else if err == nil {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return err
		}
	}
	bin := filepath.Join(root, PauseBinaryName)
	if !isBinary(bin, binary) {
		if err := atomicfile.WriteFile(bin, binary, atomicfile.Options{Perm: 0o755, Sync: true}); err != nil {
			return err
		}
	}
	for _, d := range []string{"etc", "."} {
		if err := atomicfile.SyncDir(filepath.Join(root, d)); err != nil {
			return err
		}
	}
	return nil
}

// repairTemps lists the temporary files of a repair's binary write
// (atomicfile's names for "pause") in root.
func repairTemps(root string) []string {
	tmps, _ := filepath.Glob(filepath.Join(root, ".pause.tmp-*"))
	return tmps
}

// intact reports whether root is a whole pause rootfs for binary, with
// no repair half done.
func intact(root string, binary []byte) bool {
	if !isBinary(filepath.Join(root, PauseBinaryName), binary) {
		return false
	}
	if len(repairTemps(root)) > 0 {
		return false
	}
	for _, d := range mountPointDirs {
		if st, err := os.Lstat(filepath.Join(root, d)); err != nil || !st.IsDir() {
			return false
		}
	}
	for _, f := range mountPointFiles {
		if st, err := os.Lstat(filepath.Join(root, f)); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// isBinary reports whether path is a regular file, executable by all,
// holding binary.
func isBinary(path string, binary []byte) bool {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o755 || st.Size() != int64(len(binary)) {
		return false
	}
	got, err := os.ReadFile(path)
	return err == nil && bytes.Equal(got, binary)
}

func pauseBinary(opts PauseOptions) (string, []string, error) {
	bin := opts.Binary
	if bin == "" {
		p, err := exec.LookPath("catatonit")
		if err != nil {
			return "", nil, ErrNoPauseBinary
		}
		bin = p
	}
	return bin, PauseArgs(opts)[1:], nil
}

// PauseArgs returns the pause process's command line for opts, without
// looking at any file: "/pause" and opts.Args, or "-P" (pause mode) when
// the binary is catatonit (the default) and opts.Args is nil.
func PauseArgs(opts PauseOptions) []string {
	args := opts.Args
	if args == nil && (opts.Binary == "" || filepath.Base(opts.Binary) == "catatonit") {
		args = []string{"-P"}
	}
	return append([]string{PauseBinaryName}, args...)
}

func checkStatic(path string, data []byte) error {
	f, err := elf.NewFile(readerAt(data))
	if err != nil {
		return &PauseBinaryError{Path: path, Reason: "is not an ELF executable", Err: err}
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
			return &PauseBinaryError{Path: path, Reason: fmt.Sprintf(
				"is dynamically linked (interpreter %s); the pause rootfs holds nothing but the binary, so it must be static: install catatonit or pass a static pause binary",
				trimNUL(interp))}
		}
	}
	return nil
}

type readerAt []byte

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, io.EOF
	}
	n := copy(p, r[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func trimNUL(b []byte) string {
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func populate(root string, binary []byte) error {
	for _, d := range mountPointDirs {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range mountPointFiles {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			return err
		}
	}
	bin := filepath.Join(root, PauseBinaryName)
	if err := os.WriteFile(bin, binary, 0o755); err != nil {
		return err
	}
	// Whatever the umask: the pause runs as an unprivileged user and must
	// be able to execute the binary; the directories are read-only for
	// everyone but root (MkdirTemp made the root 0700).
	if err := os.Chmod(bin, 0o755); err != nil {
		return err
	}
	for _, d := range append(mountPointDirs, ".") {
		if err := os.Chmod(filepath.Join(root, d), 0o555); err != nil {
			return err
		}
	}
	// Durable before it is renamed into place: after a crash the rootfs
	// is either whole or not there (intact checks, and replaces it).
	if err := atomicfile.SyncFile(bin); err != nil {
		return err
	}
	for _, d := range []string{"etc", "."} {
		if err := atomicfile.SyncDir(filepath.Join(root, d)); err != nil {
			return err
		}
	}
	return nil
}

// removeTree removes a rootfs that was not renamed into place, making its
// read-only directories writable first so a non-root caller can remove it.
func removeTree(root string) {
	for _, d := range append(mountPointDirs, ".") {
		_ = os.Chmod(filepath.Join(root, d), 0o755)
	}
	_ = os.RemoveAll(root)
}
