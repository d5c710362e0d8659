package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/generate/seccomp"
	"github.com/podsmith/podsmith/internal/regfile"
)

// SeccompError reports a seccomp profile that cannot be used.
type SeccompError struct {
	Path   string // the profile file, when it came from one
	Reason string
	Err    error // the underlying error, if any (a read error, say)
}

func (e *SeccompError) Error() string {
	msg := "spec: seccomp profile"
	if e.Path != "" {
		msg += " " + e.Path
	}
	msg += ": " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *SeccompError) Unwrap() error { return e.Err }

// Is makes a SeccompError match ErrInvalid.
func (e *SeccompError) Is(target error) bool { return target == ErrInvalid }

// RuntimeDefaultProfile returns the RuntimeDefault seccomp profile:
// runtime-tools' default profile (Docker's), for the default capability
// set. Each call returns a copy of its own.
func RuntimeDefaultProfile() *specs.LinuxSeccomp { return CopySeccompProfile(runtimeDefault()) }

// CopySeccompProfile returns a deep copy of p (nil for nil): a profile put
// into several specs must be copied, or an edit of one spec's would edit
// every other's.
func CopySeccompProfile(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	if p == nil {
		return nil
	}
	c := *p
	c.DefaultErrnoRet = clonePtr(p.DefaultErrnoRet)
	c.Architectures = slices.Clone(p.Architectures)
	c.Flags = slices.Clone(p.Flags)
	c.Syscalls = slices.Clone(p.Syscalls)
	for i, sc := range c.Syscalls {
		c.Syscalls[i].Names = slices.Clone(sc.Names)
		c.Syscalls[i].ErrnoRet = clonePtr(sc.ErrnoRet)
		c.Syscalls[i].Args = slices.Clone(sc.Args)
	}
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

var runtimeDefault = sync.OnceValue(func() *specs.LinuxSeccomp {
	return seccomp.DefaultProfile(&specs.Spec{
		Process: &specs.Process{Capabilities: capabilitySet(DefaultCapabilities)},
	})
})

// pauseSyscalls is everything the pause process and the runtime's last
// steps before exec need:
//   - the runtime after it loads the filter: runc's Go runtime (futex,
//     nanosleep, signals, thread and memory management), closing its file
//     descriptors through /proc/self/fd, writing the exec fifo, execve;
//     crun only needs execve and close;
//   - a static pause binary starting (catatonit, or the Kubernetes pause):
//     brk, arch_prctl, TLS and robust-list set-up, rlimits, random seed;
//   - its work: block signals, wait on a signalfd (or pause), reap
//     children as PID 1, exit.
var pauseSyscalls = []string{
	// process start and exit
	"execve", "execveat", "brk", "arch_prctl", "set_tid_address", "set_robust_list",
	"rseq", "prlimit64", "getrlimit", "mprotect", "mmap", "munmap", "madvise",
	"getrandom", "readlink", "readlinkat", "uname", "exit", "exit_group",
	// signals and waiting
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "sigaltstack",
	"signalfd", "signalfd4", "pause", "nanosleep", "clock_nanosleep", "futex",
	"sched_yield", "epoll_ctl", "epoll_pwait", "epoll_wait", "poll", "ppoll",
	"wait4", "waitid", "kill", "tgkill", "getpid", "getppid", "gettid",
	// file descriptors
	"read", "write", "writev", "close", "close_range", "fcntl", "dup", "dup2", "dup3",
	"openat", "getdents64", "fstat", "newfstatat", "statx", "fstatfs",
	// time, identity, process attributes
	"clock_gettime", "gettimeofday", "getuid", "geteuid", "getgid", "getegid",
	"prctl", "capget", "clone",
}

// PauseProfile returns a seccomp profile for the pause process alone:
// default action errno (EPERM), and only the syscalls the pause process and
// the runtime's last steps before exec need. It is tighter than the
// RuntimeDefault profile and much smaller, so the runtime compiles and
// loads it faster. clone3 fails with ENOSYS so that a libc falls back to
// clone. Each call returns a copy of its own.
func PauseProfile() *specs.LinuxSeccomp { return CopySeccompProfile(pauseProfile()) }

var pauseProfile = sync.OnceValue(func() *specs.LinuxSeccomp {
	enosys := uint(38) // ENOSYS on every Linux architecture Go supports
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: seccompArches(),
		Syscalls: []specs.LinuxSyscall{
			{Names: slices.Clone(pauseSyscalls), Action: specs.ActAllow},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
})

// seccompArches returns the native architecture and its compatibility
// ones, as runtime-tools' default profile does.
func seccompArches() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "s390x":
		return []specs.Arch{specs.ArchS390X, specs.ArchS390}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}
	}
	return nil
}

// maxProfileSize bounds a localhost profile file: real ones are tens of KiB.
const maxProfileSize = 4 << 20

// LoadSeccompProfile reads a Localhost seccomp profile: an OCI
// LinuxSeccomp object in JSON (the format containerd and CRI-O load), at an
// absolute path. Unknown fields are an error, not ignored: a Docker-format
// profile (archMap, includes/excludes) would otherwise load with its
// conditions silently dropped. The profile is validated with
// ValidateSeccompProfile. Every error is a *SeccompError.
func LoadSeccompProfile(path string) (*specs.LinuxSeccomp, error) {
	if !filepath.IsAbs(path) {
		return nil, &SeccompError{Path: path, Reason: "the path must be absolute"}
	}
	f, err := regfile.Open(path, os.O_RDONLY, true)
	var nr *regfile.NotRegularError
	if errors.As(err, &nr) {
		return nil, &SeccompError{Path: path, Reason: nr.Error()}
	}
	if err != nil {
		return nil, &SeccompError{Path: path, Reason: "cannot read it", Err: unwrapPath(err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		return nil, &SeccompError{Path: path, Reason: "cannot read it", Err: unwrapPath(err)}
	}
	if len(b) > maxProfileSize {
		return nil, &SeccompError{Path: path, Reason: fmt.Sprintf("larger than %d bytes", maxProfileSize)}
	}
	p, err := ParseSeccompProfile(b)
	if err != nil {
		var se *SeccompError
		if errors.As(err, &se) {
			se.Path = path
		}
		return nil, err
	}
	return p, nil
}

// unwrapPath drops the *fs.PathError layer (the SeccompError names the
// path) but keeps its cause, so errors.Is(err, fs.ErrNotExist) holds.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ParseSeccompProfile decodes and validates a profile (see
// LoadSeccompProfile).
func ParseSeccompProfile(data []byte) (*specs.LinuxSeccomp, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p specs.LinuxSeccomp
	if err := dec.Decode(&p); err != nil {
		return nil, &SeccompError{Reason: "not a valid OCI seccomp profile (JSON)", Err: err}
	}
	if dec.More() {
		return nil, &SeccompError{Reason: "trailing data after the JSON object"}
	}
	if err := ValidateSeccompProfile(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

var (
	seccompActions = []specs.LinuxSeccompAction{
		specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
	}
	seccompOps = []specs.LinuxSeccompOperator{
		specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
	}
	seccompFlags = []specs.LinuxSeccompFlag{
		specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow,
		specs.LinuxSeccompFlagWaitKillableRecv, "SECCOMP_FILTER_FLAG_TSYNC",
	}
)

// ValidateSeccompProfile checks the names in a profile: actions, operators,
// architectures ("SCMP_ARCH_…") and flags must be known, and every syscall
// rule must name at least one syscall. SCMP_ACT_NOTIFY needs a
// listenerPath.
// All problems are returned, in one *SeccompError.
func ValidateSeccompProfile(p *specs.LinuxSeccomp) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !slices.Contains(seccompActions, p.DefaultAction) {
		add("defaultAction %q is not a seccomp action", p.DefaultAction)
	}
	if p.DefaultAction == specs.ActNotify && p.ListenerPath == "" {
		add("defaultAction SCMP_ACT_NOTIFY needs a listenerPath")
	}
	for _, a := range p.Architectures {
		if !strings.HasPrefix(string(a), "SCMP_ARCH_") || len(a) == len("SCMP_ARCH_") {
			add("architecture %q is not a seccomp architecture", a)
		}
	}
	for _, f := range p.Flags {
		if !slices.Contains(seccompFlags, f) {
			add("flag %q is not a seccomp filter flag", f)
		}
	}
	for i, sc := range p.Syscalls {
		if len(sc.Names) == 0 {
			add("syscalls[%d] names no syscall", i)
		}
		for _, n := range sc.Names {
			if n == "" || strings.ContainsFunc(n, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
				add("syscalls[%d]: %q is not a syscall name", i, n)
			}
		}
		if !slices.Contains(seccompActions, sc.Action) {
			add("syscalls[%d]: action %q is not a seccomp action", i, sc.Action)
		}
		if sc.Action == specs.ActNotify && p.ListenerPath == "" {
			add("syscalls[%d]: SCMP_ACT_NOTIFY needs a listenerPath", i)
		}
		for j, a := range sc.Args {
			if !slices.Contains(seccompOps, a.Op) {
				add("syscalls[%d].args[%d]: op %q is not a seccomp operator", i, j, a.Op)
			}
		}
	}
	if len(problems) > 0 {
		return &SeccompError{Reason: strings.Join(problems, "; ")}
	}
	return nil
}
