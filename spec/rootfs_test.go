package spec

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeELF builds a minimal x86-64 executable image: enough for debug/elf,
// with a PT_INTERP program header when interp is not empty.
func fakeELF(t testing.TB, interp string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := func(v any) { require.NoError(t, binary.Write(&buf, binary.LittleEndian, v)) }
	phnum := uint16(1)
	if interp != "" {
		phnum = 2
	}
	const ehsize, phentsize = 64, 56
	interpOff := uint64(ehsize + phentsize*uint64(phnum))
	buf.Write([]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), 0, 0, 0, 0, 0, 0, 0, 0, 0})
	w(uint16(elf.ET_EXEC))
	w(uint16(elf.EM_X86_64))
	w(uint32(elf.EV_CURRENT))
	w(uint64(0x401000)) // entry
	w(uint64(ehsize))   // phoff
	w(uint64(0))        // shoff
	w(uint32(0))        // flags
	w(uint16(ehsize))
	w(uint16(phentsize))
	w(phnum)
	w(uint16(0)) // shentsize
	w(uint16(0)) // shnum
	w(uint16(0)) // shstrndx
	// PT_LOAD
	w(uint32(elf.PT_LOAD))
	w(uint32(elf.PF_R | elf.PF_X))
	w(uint64(0))
	w(uint64(0x400000))
	w(uint64(0x400000))
	w(uint64(256))
	w(uint64(256))
	w(uint64(0x1000))
	if interp != "" {
		w(uint32(elf.PT_INTERP))
		w(uint32(elf.PF_R))
		w(interpOff)
		w(uint64(0x400000 + interpOff))
		w(uint64(0x400000 + interpOff))
		w(uint64(len(interp) + 1))
		w(uint64(len(interp) + 1))
		w(uint64(1))
		buf.WriteString(interp)
		buf.WriteByte(0)
	}
	for buf.Len() < 256 {
		buf.WriteByte(0)
	}
	return buf.Bytes()
}

func writeBinary(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o755))
	return p
}

func TestPreparePauseRootfs(t *testing.T) {
	bin := writeBinary(t, t.TempDir(), "pause", fakeELF(t, ""))
	dir := filepath.Join(t.TempDir(), "rootfs")
	r, err := PreparePauseRootfs(dir, PauseOptions{Binary: bin})
	require.NoError(t, err)
	assert.Equal(t, []string{"/pause"}, r.Args, "no arguments for a binary that is not catatonit")
	assert.True(t, strings.HasPrefix(filepath.Base(r.Path), "pause-"))
	assert.Equal(t, dir, filepath.Dir(r.Path))

	st, err := os.Stat(filepath.Join(r.Path, "pause"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o755), st.Mode().Perm())
	got, err := os.ReadFile(filepath.Join(r.Path, "pause"))
	require.NoError(t, err)
	assert.Equal(t, fakeELF(t, ""), got)
	for _, d := range []string{".", "proc", "sys", "dev", "etc"} {
		st, err := os.Stat(filepath.Join(r.Path, d))
		require.NoError(t, err)
		assert.True(t, st.IsDir())
		assert.Equal(t, fs.FileMode(0o555), st.Mode().Perm(), d)
	}
	for _, f := range []string{"etc/resolv.conf", "etc/hostname", "etc/hosts"} {
		assert.FileExists(t, filepath.Join(r.Path, f))
	}
	ents, err := os.ReadDir(r.Path)
	require.NoError(t, err)
	assert.Len(t, ents, 5, "the binary and the mount points, nothing else")

	// Idempotent: the same binary gives the same rootfs.
	again, err := PreparePauseRootfs(dir, PauseOptions{Binary: bin, Args: []string{"-v"}})
	require.NoError(t, err)
	assert.Equal(t, r.Path, again.Path)
	assert.Equal(t, []string{"/pause", "-v"}, again.Args)
	ents, err = os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 1)

	// Another binary, another rootfs.
	other := fakeELF(t, "")
	other[len(other)-1] = 1
	r2, err := PreparePauseRootfs(dir, PauseOptions{Binary: writeBinary(t, t.TempDir(), "pause2", other)})
	require.NoError(t, err)
	assert.NotEqual(t, r.Path, r2.Path)

	s, err := New(r.Opt())
	require.NoError(t, err)
	assert.Equal(t, "rootfs", s.Root.Path)
	assert.True(t, s.Root.Readonly)
	assert.Equal(t, []string{"/pause"}, s.Process.Args)
	makeRemovable(t, dir)
}

// makeRemovable lets t.TempDir's cleanup remove read-only rootfs dirs when
// the test runs as a normal user.
func makeRemovable(t *testing.T, dir string) {
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}

func TestPreparePauseRootfsFindsCatatonit(t *testing.T) {
	path := t.TempDir()
	writeBinary(t, path, "catatonit", fakeELF(t, ""))
	t.Setenv("PATH", path)
	dir := filepath.Join(t.TempDir(), "rootfs")
	r, err := PreparePauseRootfs(dir, PauseOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"/pause", "-P"}, r.Args, "catatonit runs in pause mode")
	makeRemovable(t, dir)
}

func TestPreparePauseRootfsRefuses(t *testing.T) {
	bins := t.TempDir()
	dynamic := writeBinary(t, bins, "dynamic", fakeELF(t, "/lib64/ld-linux-x86-64.so.2"))
	script := writeBinary(t, bins, "script", []byte("#!/bin/sh\nsleep infinity\n"))

	dir := filepath.Join(t.TempDir(), "rootfs")
	_, err := PreparePauseRootfs(dir, PauseOptions{Binary: dynamic})
	var pe *PauseBinaryError
	require.True(t, errors.As(err, &pe))
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2)")
	assert.Contains(t, err.Error(), "must be static")

	_, err = PreparePauseRootfs(dir, PauseOptions{Binary: script})
	require.True(t, errors.As(err, &pe))
	assert.Contains(t, err.Error(), "not an ELF executable")

	_, err = PreparePauseRootfs(dir, PauseOptions{Binary: filepath.Join(bins, "missing")})
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.True(t, errors.As(err, &pe))

	t.Setenv("PATH", t.TempDir())
	_, err = PreparePauseRootfs(dir, PauseOptions{})
	require.ErrorIs(t, err, ErrNoPauseBinary)
	assert.Contains(t, err.Error(), "apt-get install catatonit")

	assert.NoDirExists(t, dir, "nothing made for a binary that cannot be used")
}

func TestPreparePauseRootfsCannotCreate(t *testing.T) {
	bin := writeBinary(t, t.TempDir(), "pause", fakeELF(t, ""))
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err := PreparePauseRootfs(filepath.Join(file, "rootfs"), PauseOptions{Binary: bin})
	require.Error(t, err)
}

func TestPreparePauseRootfsRace(t *testing.T) {
	bin := writeBinary(t, t.TempDir(), "pause", fakeELF(t, ""))
	dir := filepath.Join(t.TempDir(), "rootfs")
	makeRemovable(t, dir)
	var wg sync.WaitGroup
	paths := make([]string, 16)
	errs := make([]error, 16)
	for i := range paths {
		wg.Go(func() {
			r, err := PreparePauseRootfs(dir, PauseOptions{Binary: bin})
			errs[i] = err
			if err == nil {
				paths[i] = r.Path
			}
		})
	}
	wg.Wait()
	for i := range paths {
		require.NoError(t, errs[i])
		assert.Equal(t, paths[0], paths[i])
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "one rootfs, no temp dirs left by the losers")
	assert.FileExists(t, filepath.Join(paths[0], "pause"))
}

// A rootfs cut short by a crash, or edited, is not used as it is: it is
// repaired in place (live bundles may have it bound as their rootfs, so it
// is never replaced by another directory). Something else at its path is
// replaced.
func TestPreparePauseRootfsRepairsABrokenOne(t *testing.T) {
	bin := writeBinary(t, t.TempDir(), "pause", fakeELF(t, ""))
	outside := t.TempDir()
	require.NoError(t, os.Chmod(outside, fs.ModeSticky|0o777))
	for name, breakIt := range map[string]func(root string){
		"truncated binary": func(root string) {
			require.NoError(t, os.Truncate(filepath.Join(root, "pause"), 10))
		},
		"binary not executable": func(root string) {
			require.NoError(t, os.Chmod(filepath.Join(root, "pause"), 0o644))
		},
		"binary a symlink": func(root string) {
			require.NoError(t, os.Remove(filepath.Join(root, "pause")))
			require.NoError(t, os.Symlink(bin, filepath.Join(root, "pause")))
		},
		"missing mount point file": func(root string) {
			require.NoError(t, os.Remove(filepath.Join(root, "etc", "hosts")))
		},
		"file for a mount point dir": func(root string) {
			require.NoError(t, os.Remove(filepath.Join(root, "proc")))
			require.NoError(t, os.WriteFile(filepath.Join(root, "proc"), nil, 0o644))
		},
		"symlinks for mount point dirs": func(root string) {
			// A sticky, world-writable directory elsewhere: repair must
			// not change its mode through the links.
			for _, d := range []string{"etc", "dev"} {
				require.NoError(t, os.RemoveAll(filepath.Join(root, d)))
				require.NoError(t, os.Symlink(outside, filepath.Join(root, d)))
			}
		},
		"a repair cut short": func(root string) {
			require.NoError(t, os.WriteFile(filepath.Join(root, ".pause.tmp-123"), []byte("half"), 0o755))
		},
		"a directory where repair writes": func(root string) {
			require.NoError(t, os.MkdirAll(filepath.Join(root, ".pause.tmp-456", "x"), 0o755))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rootfs")
			makeRemovable(t, dir)
			r, err := PreparePauseRootfs(dir, PauseOptions{Binary: bin})
			require.NoError(t, err)
			for _, d := range []string{r.Path, filepath.Join(r.Path, "etc")} {
				require.NoError(t, os.Chmod(d, 0o755))
			}
			breakIt(r.Path)
			was, err := os.Stat(r.Path)
			require.NoError(t, err)

			again, err := PreparePauseRootfs(dir, PauseOptions{Binary: bin})
			require.NoError(t, err)
			assert.Equal(t, r.Path, again.Path)
			assert.True(t, intact(again.Path, fakeELF(t, "")))
			now, err := os.Stat(again.Path)
			require.NoError(t, err)
			assert.True(t, os.SameFile(was, now), "repaired in place")
			for _, d := range []string{".", "proc", "etc"} {
				st, err := os.Stat(filepath.Join(again.Path, d))
				require.NoError(t, err)
				assert.Equal(t, fs.FileMode(0o555), st.Mode().Perm(), d)
			}
			ents, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, ents, 1, "no temp dir left")
			ents, err = os.ReadDir(again.Path)
			require.NoError(t, err)
			assert.Len(t, ents, 5, "pause and the mount point dirs, no temp file")
			st, err := os.Stat(outside)
			require.NoError(t, err)
			assert.Equal(t, fs.ModeDir|fs.ModeSticky|0o777, st.Mode(), "untouched")
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "rootfs")
		makeRemovable(t, dir)
		r, err := PreparePauseRootfs(dir, PauseOptions{Binary: bin})
		require.NoError(t, err)
		removeTree(r.Path)
		require.NoError(t, os.WriteFile(r.Path, nil, 0o644))
		_, err = PreparePauseRootfs(dir, PauseOptions{Binary: bin})
		require.NoError(t, err)
		assert.True(t, intact(r.Path, fakeELF(t, "")))
	})
}
