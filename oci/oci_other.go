//go:build !linux

package oci

import (
	"context"
	"os/exec"
	"syscall"

	"github.com/opencontainers/runtime-spec/specs-go"
)

func lookPath(name string) (string, error) { return exec.LookPath(name) }

func (r *Runtime) create(context.Context, string, string, bool) (int, error) {
	return 0, ErrNotSupported
}

func (r *Runtime) run(context.Context, string, string, ...string) ([]byte, error) {
	return nil, ErrNotSupported
}

func (r *Runtime) kill(context.Context, string, syscall.Signal) error { return ErrNotSupported }

func (r *Runtime) wait(context.Context, string) error { return ErrNotSupported }

func (r *Runtime) delete(context.Context, string) error { return ErrNotSupported }

func (r *Runtime) state(context.Context, string) (specs.State, error) {
	return specs.State{}, ErrNotSupported
}

// MonitorCommand is the first argument with which an embedder's binary is
// re-executed as a monitor (Linux only).
const MonitorCommand = "__podsmith-oci-monitor"

// MonitorMain is the monitor (Linux only).
func MonitorMain([]string) int { return 2 }
