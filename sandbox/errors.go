package sandbox

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/podsmith/podsmith/internal/platform"
	"github.com/podsmith/podsmith/pod"
)

var (
	// ErrInvalidConfig is matched by every error about a pod config or
	// Builder options that cannot be used: a *ConfigError from Plan, Build
	// and NewBuilder, a *pod.DecodeError. It is pod.ErrInvalid.
	ErrInvalidConfig = pod.ErrInvalid
	// ErrNameReserved is matched by a *NameReservedError: another sandbox
	// has the name.
	ErrNameReserved = errors.New("sandbox: name reserved")
	// ErrNotFound means no sandbox has the ID or name, or a sandbox has
	// nothing of what was asked (no network attachment, no pause).
	ErrNotFound = errors.New("sandbox: not found")
	// ErrNoNetwork is what a Network's Prepare returns when the node has
	// no network configured and the pod is to keep its loopback interface
	// only: the step then attaches nothing.
	ErrNoNetwork = errors.New("sandbox: no network configured: loopback only")
	// ErrNotSupported is returned on systems other than Linux by the real
	// host. It matches errors.ErrUnsupported.
	ErrNotSupported = platform.ErrNotSupported
)

// Problem is one reason a config is invalid, at a field path such as
// "dns_config.servers[3]" or `linux.sysctls["kernel.panic"]`.
type Problem struct {
	Field  string
	Reason string
	// Err is the leaf package's typed error behind the problem, if any
	// (a *dns.ValidationError, a *spec.SysctlError, ...).
	Err error
}

func (p *Problem) Error() string {
	if p.Field == "" {
		return p.Reason
	}
	return p.Field + ": " + p.Reason
}

// Unwrap returns the leaf package's error.
func (p *Problem) Unwrap() error { return p.Err }

// ConfigError lists every problem found in a pod config (or in a Builder's
// Options), sorted by field path, so one config always gives the same
// text. It matches ErrInvalidConfig, and errors.As finds each problem's
// leaf error through it.
type ConfigError struct {
	Problems []*Problem
}

// Error names the first MaxProblemsInError problems, and how many more
// there are: a config with tens of thousands of bad labels must not make
// a message of megabytes (the CRI sends it back, logs keep it). Problems
// holds them all.
func (e *ConfigError) Error() string {
	shown := e.Problems[:min(len(e.Problems), MaxProblemsInError)]
	msgs := make([]string, len(shown), len(shown)+1)
	for i, p := range shown {
		msgs[i] = p.Error()
	}
	if more := len(e.Problems) - len(shown); more > 0 {
		msgs = append(msgs, fmt.Sprintf("and %d more", more))
	}
	noun := "problems"
	if len(e.Problems) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("sandbox: invalid config (%d %s): %s", len(e.Problems), noun, strings.Join(msgs, "; "))
}

// MaxProblemsInError is how many problems a ConfigError's message names.
const MaxProblemsInError = 32

// Is makes a ConfigError match ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap returns the problems.
func (e *ConfigError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// problems collects the problems of one config.
type problems struct{ list []*Problem }

func (p *problems) add(field, reason string, err error) {
	p.list = append(p.list, &Problem{Field: field, Reason: reason, Err: err})
}

func (p *problems) addf(field, format string, args ...any) {
	p.add(field, fmt.Sprintf(format, args...), nil)
}

// err returns the problems as a *ConfigError, sorted by field (stably:
// two problems of one field keep their order), or nil.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	slices.SortStableFunc(p.list, func(a, b *Problem) int { return cmp.Compare(a.Field, b.Field) })
	return &ConfigError{Problems: p.list}
}

// NameReservedError says another sandbox holds the name.
type NameReservedError struct {
	Name string
	ID   string // the sandbox that has it
}

func (e *NameReservedError) Error() string {
	return fmt.Sprintf("sandbox: name %q is reserved by sandbox %s", e.Name, e.ID)
}

// Is makes a NameReservedError match ErrNameReserved.
func (e *NameReservedError) Is(target error) bool { return target == ErrNameReserved }

// StepError says which step of a Build failed. It unwraps to the cause. If
// rolling back failed too, RollbackErr says what is left (a join of
// *UndoError; the sandbox is then in StateNeedsCleanup, and Destroy
// retries).
type StepError struct {
	ID          string
	Step        Step
	Err         error
	RollbackErr error
}

func (e *StepError) Error() string {
	msg := fmt.Sprintf("sandbox %s: step %s: %v", shortID(e.ID), e.Step, e.Err)
	if e.RollbackErr != nil {
		msg += fmt.Sprintf(" (and rollback failed: %v)", e.RollbackErr)
	}
	return msg
}

// Unwrap returns the cause and, if any, the rollback error.
func (e *StepError) Unwrap() []error {
	if e.RollbackErr != nil {
		return []error{e.Err, e.RollbackErr}
	}
	return []error{e.Err}
}

// UndoError is an undo that failed: what stays on the host (a mount, a
// netns pin, a network attachment, a container...) until a Destroy or
// Recover undoes it. It unwraps to the cause.
type UndoError struct {
	Op   string // the journal's operation: unmount, netns-remove, cni-del, runtime-delete...
	Path string // what it undoes: a mount point, a pin, a sandbox or container ID
	Err  error
}

func (e *UndoError) Error() string { return fmt.Sprintf("undo %s %s: %v", e.Op, e.Path, e.Err) }

// Unwrap returns the cause.
func (e *UndoError) Unwrap() error { return e.Err }

func shortID(id string) string { return id[:min(len(id), 12)] }

// truncate cuts a value that an error echoes.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
