package sandbox

import (
	"errors"
	"fmt"
	"strings"

	"github.com/podsmith/podsmith/internal/platform"
)

var (
	// ErrInvalidConfig is matched by every error about a pod config or
	// Builder options that cannot be used: a *ConfigError from Plan and
	// Build, a *DecodeError from DecodeConfig.
	ErrInvalidConfig = errors.New("sandbox: invalid config")
	// ErrNameReserved is matched by a *NameReservedError: another sandbox
	// has the name.
	ErrNameReserved = errors.New("sandbox: name reserved")
	// ErrNotFound means no sandbox has the ID or name.
	ErrNotFound = errors.New("sandbox: not found")
	// ErrAmbiguous means an ID prefix names more than one sandbox.
	ErrAmbiguous = errors.New("sandbox: ambiguous")
	// ErrNotSupported is returned on systems other than Linux by the real
	// host implementations.
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

// ConfigError lists every problem found in a pod config. It matches
// ErrInvalidConfig, and errors.As finds each problem's leaf error through
// it.
type ConfigError struct {
	Problems []*Problem
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sandbox: invalid config (%d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString("): ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

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
// rolling back failed too, RollbackErr says what is left (the sandbox is
// then listed as needing cleanup, and Destroy retries).
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

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
