package cni

import (
	"errors"
	"fmt"
)

var (
	// ErrCNI is matched by every error of this package.
	ErrCNI = errors.New("cni")
	// ErrNoConfig: the conf dir holds no network configuration (or none
	// of the pinned name).
	ErrNoConfig = errors.New("no network configuration")
	// ErrNoIP: an ADD succeeded without giving the pod's interface an
	// address.
	ErrNoIP = errors.New("the result has no address on the pod's interface")
)

// Error is a failed plugin operation. It unwraps to the cause: the
// plugins' *types.Error, a context error for a timeout, ErrNoIP.
type Error struct {
	Op        string // ADD, DEL, CHECK or GC
	Network   string
	SandboxID string
	Err       error
}

func (e *Error) Error() string {
	id := e.SandboxID
	if len(id) > 12 {
		id = id[:12]
	}
	if id == "" {
		return fmt.Sprintf("cni: %s network %q: %v", e.Op, e.Network, e.Err)
	}
	return fmt.Sprintf("cni: %s network %q for sandbox %s: %v", e.Op, e.Network, id, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes an Error match ErrCNI.
func (e *Error) Is(target error) bool { return target == ErrCNI }

// ConfigError is a network configuration that cannot be used. File is the
// file (or the conf dir, when the problem is the dir).
type ConfigError struct {
	File string
	Err  error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("cni: %s: %v", e.File, e.Err) }

// Unwrap returns the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is makes a ConfigError match ErrCNI.
func (e *ConfigError) Is(target error) bool { return target == ErrCNI }

// BandwidthError is a bandwidth annotation that cannot be used.
type BandwidthError struct {
	Annotation, Value, Reason string
}

func (e *BandwidthError) Error() string {
	return fmt.Sprintf("cni: annotation %s=%q: %s", e.Annotation, e.Value, e.Reason)
}

// Is makes a BandwidthError match ErrCNI.
func (e *BandwidthError) Is(target error) bool { return target == ErrCNI }
