package oci

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unicode"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/platform"
)

// DefaultRuntime is the runtime of Options that name none.
const DefaultRuntime = "runc"

// DefaultRootDir holds the runtimes' state dirs of Options that set no
// Root: <DefaultRootDir>/<the runtime's base name>.
const DefaultRootDir = "/run/podsmith/runtime"

// PidFile is the file, in a container's bundle, where Create has the
// runtime write the container's PID.
const PidFile = "pause.pid"

var (
	// ErrNotExist is matched by State's error for a container the
	// runtime does not have. It matches fs.ErrNotExist too.
	ErrNotExist = fmt.Errorf("oci: no such container: %w", fs.ErrNotExist)
	// ErrNotSupported is returned on systems other than Linux.
	ErrNotSupported = platform.ErrNotSupported
)

// Error is a runtime command that failed. It unwraps to the cause (an
// *exec.ExitError, a context error, exec.ErrNotFound...).
type Error struct {
	Runtime string // the runtime's base name: runc, crun
	Op      string // create, start, kill, delete, state, find
	ID      string // the container, "" for find
	Err     error
	// Output is what the runtime said, cut to its last lines and to
	// printable text; "" when it said nothing.
	Output string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Runtime + " " + e.Op)
	if e.ID != "" {
		b.WriteString(" " + shortID(e.ID))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Output != "" {
		b.WriteString(": " + e.Output)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Options configure a Runtime. The zero value of every field means its
// default.
type Options struct {
	// Runtime is "runc", "crun", or the path of a binary with their
	// command line (a wrapper script, say); default "runc", looked up on
	// PATH.
	Runtime string
	// Root is the runtime's state dir (its --root); default
	// DefaultRootDir/<base name of Runtime>. It is created, mode 0700, by
	// the first Create. Give every Builder (state dir) its own: a
	// runtime's containers are named by sandbox ID alone.
	Root string
	// GlobalArgs go before the command, after --root: "--systemd-cgroup"
	// for runc with the systemd cgroup manager, say.
	GlobalArgs []string
	// Monitor, if set, is the path of an executable (the embedder's own,
	// os.Executable()) that runs MonitorMain when its first argument is
	// MonitorCommand: create then runs in a monitor process that holds the
	// pause and reaps it (see the package doc). Empty: create runs as a
	// child of this process, and the pause is reaped by Wait if this
	// process is a child subreaper, else by PID 1.
	Monitor string
}

// Runtime drives one OCI runtime binary. It is safe for concurrent use.
type Runtime struct {
	name string // base name, for errors
	bin  string // resolved path
	root string
	args []string
	mon  string

	// pidfds are pidfds of the processes of the containers this Runtime
	// created, from Create to Wait or Delete: a runtime reports PID 0 for
	// a stopped container, so without them a pause that exited could not
	// be found to reap.
	mu     sync.Mutex
	pidfds map[string]*os.File
}

// New finds the runtime's binary (an error matching exec.ErrNotFound if it
// is not there) and returns its driver. It makes nothing on disk.
func New(opts Options) (*Runtime, error) {
	if opts.Runtime == "" {
		opts.Runtime = DefaultRuntime
	}
	name := filepath.Base(opts.Runtime)
	bin, err := lookPath(opts.Runtime)
	if err != nil {
		return nil, &Error{Runtime: name, Op: "find", Err: err}
	}
	if opts.Root == "" {
		opts.Root = filepath.Join(DefaultRootDir, name)
	}
	if !filepath.IsAbs(opts.Root) {
		return nil, &Error{Runtime: name, Op: "find", Err: fmt.Errorf("root %q is not an absolute path", opts.Root)}
	}
	return &Runtime{name: name, bin: bin, root: filepath.Clean(opts.Root), args: opts.GlobalArgs, mon: opts.Monitor, pidfds: map[string]*os.File{}}, nil
}

// Name returns the runtime's base name (runc, crun).
func (r *Runtime) Name() string { return r.name }

// Root returns the runtime's state dir.
func (r *Runtime) Root() string { return r.root }

// Create creates the container id from the bundle: the runtime sets it up
// and leaves its process waiting for Start. It returns the process's PID.
// When ctx ends first, the create is killed; what it made is for Delete.
func (r *Runtime) Create(ctx context.Context, id, bundle string) (int, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	return r.create(ctx, id, bundle, false)
}

// Run creates the container id from the bundle and starts its process, in
// one runtime process (run --detach): Create and Start in one, a runtime
// process fewer (some 5 ms of runc's). It returns the process's PID. When
// ctx ends first, the run is killed; what it made is for Delete.
func (r *Runtime) Run(ctx context.Context, id, bundle string) (int, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	return r.create(ctx, id, bundle, true)
}

// Start starts a created container's process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := r.run(ctx, "start", id)
	return err
}

// Kill sends sig to the container's process. A container that is gone, or
// whose process has exited, is success.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	if err := checkID(id); err != nil {
		return err
	}
	return r.kill(ctx, id, sig)
}

// Wait waits until the container's process has exited (and reaps it if it
// is this process's child), or ctx ends. A container that is gone, or
// never ran, is success.
func (r *Runtime) Wait(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return r.wait(ctx, id)
}

// Delete deletes a container whose process has exited, or one that a
// create cut short left half made. A container that is gone is success;
// one whose process runs is an error (Kill and Wait first).
func (r *Runtime) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return r.delete(ctx, id)
}

// State returns the container's state as the runtime reports it, or an
// error matching ErrNotExist for a container it does not have.
func (r *Runtime) State(ctx context.Context, id string) (specs.State, error) {
	if err := checkID(id); err != nil {
		return specs.State{}, err
	}
	return r.state(ctx, id)
}

// keepPidfd keeps the pidfd of container id's process, for Wait.
func (r *Runtime) keepPidfd(id string, f *os.File) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.pidfds[id]; old != nil {
		old.Close()
	}
	r.pidfds[id] = f
}

// takePidfd returns and forgets the kept pidfd of container id, nil if
// none.
func (r *Runtime) takePidfd(id string) *os.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.pidfds[id]
	delete(r.pidfds, id)
	return f
}

// checkID refuses IDs that are not a file name: the runtime keeps a
// directory per container under its root, named by its ID.
func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || len(id) > 255 {
		return fmt.Errorf("oci: %q is not a container ID", shortID(id))
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// maxOutput bounds the runtime output an Error keeps.
const maxOutput = 512

// cleanOutput makes what a runtime wrote fit an error message: its last
// lines, joined, printable only, cut to maxOutput bytes; runc's logrus
// lines (time="..." level=error msg="...") are cut to their message.
func cleanOutput(out []byte) string {
	var lines []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, ` msg="`); i >= 0 && strings.HasPrefix(line, "time=") {
			line = strings.TrimSuffix(line[i+len(` msg="`):], `"`)
			line = strings.ReplaceAll(line, `\"`, `"`)
		}
		if line != "" {
			lines = append(lines, line)
		}
	}
	s := strings.Join(lines, "; ")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
	if len(s) > maxOutput {
		s = "..." + s[len(s)-maxOutput:]
	}
	return s
}
