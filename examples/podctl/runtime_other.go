//go:build !linux

package main

import (
	"errors"
	"path/filepath"
)

// errLinuxOnly: podctl can plan anywhere, but runs pause processes on
// Linux only.
var errLinuxOnly = errors.New("running a pause process needs Linux")

type ociRuntime struct{ name string }

type runtimeState struct {
	Pid    int
	Status string
}

func newRuntime(name, _ string) *ociRuntime               { return &ociRuntime{name: filepath.Base(name)} }
func (r *ociRuntime) state(string) (*runtimeState, error) { return nil, nil }
func (r *ociRuntime) running(string) (bool, error)        { return false, nil }
func (r *ociRuntime) start(string, string) error          { return errLinuxOnly }
func (r *ociRuntime) stop(string) error                   { return nil }
func (r *ociRuntime) forget(string) error                 { return nil }
func (r *ociRuntime) monitorPID(string) int               { return 0 }
func alive(int) bool                                      { return false }

const monitorCommand = "__monitor"

func monitorMain([]string) int { return 2 }
