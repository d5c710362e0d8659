//go:build !linux

package mounts

func mountShm(string, int64, string, *Owner) error { return ErrNotSupported }

func unmountAndRemove(string) error { return ErrNotSupported }

func isMountPoint(string) (bool, error) { return false, ErrNotSupported }

func bindReadOnly(string, string) error { return ErrNotSupported }
