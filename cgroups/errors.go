package cgroups

import (
	"errors"
	"fmt"
)

// ErrInvalid is the class of every validation error of this package:
// errors.Is(err, ErrInvalid) is true for a [*ManagerError], [*ParentError],
// [*SliceError] and [*NameError].
var ErrInvalid = errors.New("cgroups: invalid")

// ManagerError reports an unknown cgroup manager name.
type ManagerError struct {
	// Value is the name that was given.
	Value string
}

// Error says which name was given and which names are known.
func (e *ManagerError) Error() string {
	return fmt.Sprintf("unknown cgroup manager %q; use %q or %q", e.Value, Systemd, Cgroupfs)
}

// Is reports whether target is [ErrInvalid].
func (e *ManagerError) Is(target error) bool { return target == ErrInvalid }

// ParentError reports a cgroup parent that is not valid for the cgroup
// manager. When the parent names an invalid systemd slice, errors.As also
// finds the [*SliceError] underneath.
type ParentError struct {
	// Manager is the cgroup manager the parent was checked against.
	Manager Manager
	// Parent is the cgroup parent that was given.
	Parent string
	// Reason says what is wrong and how to fix it; it follows the quoted
	// parent in the message, as in `is not a systemd slice (...)`.
	Reason string

	cause error
}

// Error says which parent was refused, for which manager, and how to fix it.
func (e *ParentError) Error() string {
	return fmt.Sprintf("cgroup parent %q %s", e.Parent, e.Reason)
}

// Is reports whether target is [ErrInvalid].
func (e *ParentError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the [*SliceError] behind the refusal, or nil.
func (e *ParentError) Unwrap() error { return e.cause }

// SliceError reports an invalid systemd slice name.
type SliceError struct {
	// Slice is the slice name that was given.
	Slice string
	// Reason says what is wrong with it.
	Reason string
}

// Error says which slice name was refused and why.
func (e *SliceError) Error() string {
	return fmt.Sprintf("invalid systemd slice name %q: %s", e.Slice, e.Reason)
}

// Is reports whether target is [ErrInvalid].
func (e *SliceError) Is(target error) bool { return target == ErrInvalid }

// NameError reports an invalid cgroup name prefix or sandbox id.
type NameError struct {
	// Field is "prefix" or "id".
	Field string
	// Value is the value that was given.
	Value string
	// Reason says what is wrong with it.
	Reason string
}

// Error says which field was refused, its value and why.
func (e *NameError) Error() string {
	return fmt.Sprintf("invalid cgroup %s %q: %s", e.Field, e.Value, e.Reason)
}

// Is reports whether target is [ErrInvalid].
func (e *NameError) Is(target error) bool { return target == ErrInvalid }
