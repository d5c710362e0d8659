//go:build !linux

package spec

import "os"

func ownOOMScoreAdj() (int, bool, error) { return 0, false, ErrNotSupported }

func openRegular(string) (*os.File, error) { return nil, ErrNotSupported }

func openOwn(string) (*os.File, error) { return nil, ErrNotSupported }
