//go:build !linux

package nsthread

import "errors"

// Run needs Linux.
func Run(Kind, string, func() error) error { return errors.ErrUnsupported }

// Pin needs Linux.
func Pin(Kind, string, func() error) error { return errors.ErrUnsupported }

// Open needs Linux.
func Open(Kind, string) (int, error) { return -1, errors.ErrUnsupported }

// Remove needs Linux.
func Remove(string) error { return errors.ErrUnsupported }

// Live is false off Linux.
func Live(string) bool { return false }

// Inode needs Linux.
func Inode(string) (uint64, error) { return 0, errors.ErrUnsupported }

// WriteSysctls needs Linux.
func WriteSysctls(map[string]string) error { return errors.ErrUnsupported }

// WriteSysctl needs Linux.
func WriteSysctl(string, string) error { return errors.ErrUnsupported }

// PinFile needs Linux.
func PinFile(string) error { return errors.ErrUnsupported }
