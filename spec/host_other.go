//go:build !linux

package spec

func ownOOMScoreAdj() (int, bool, error) { return 0, false, ErrNotSupported }
