//go:build !linux

package spec

import "os"

func ownOOMScoreAdj() (int, bool, error) { return 0, false, ErrNotSupported }

func openRegular(string) (*os.File, error) { return nil, ErrNotSupported }

// openOwn opens path if it is a regular file, never through a symlink
// (where there is no O_PATH: a look, then an open of what was looked at).
func openOwn(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &notRegularError{kind: "mode " + fi.Mode().Type().String()}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if now, err := f.Stat(); err != nil || !os.SameFile(fi, now) {
		f.Close()
		return nil, &notRegularError{kind: "replaced while opened"}
	}
	return f, nil
}
