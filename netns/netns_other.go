//go:build !linux

package netns

import "errors"

var errBusy = errors.New("busy")

func create(string, string) error { return ErrNotSupported }

func check(string) error { return ErrNotSupported }

func do(string, func() error) error { return ErrNotSupported }

func inode(string) (uint64, error) { return 0, ErrNotSupported }

func remove(string) error { return ErrNotSupported }

func list(string) ([]Pin, error) { return nil, ErrNotSupported }

func createInUserNS(string, string, UserNS) error { return ErrNotSupported }
