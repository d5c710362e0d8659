package spec

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fullSpec is a spec with every option podsmith uses set.
func fullSpec(t testing.TB) *Spec {
	t.Helper()
	s, err := New(
		WithArgs("/pause", "-P"),
		WithRoot("/var/lib/podsmith/pause-0123456789abcdef", true),
		WithNamespace(specs.NetworkNamespace, "/run/netns/podsmith-x"),
		WithHostname("web-0"),
		WithMounts(
			specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/run/podsmith/x/shm", Options: []string{"bind", "rw", "nosuid", "nodev", "noexec"}},
			specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: "/run/podsmith/x/resolv.conf", Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}},
			specs.Mount{Destination: "/etc/hostname", Type: "bind", Source: "/run/podsmith/x/hostname", Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}},
			specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: "/run/podsmith/x/hosts", Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}},
		),
		WithCgroupsPath("/podsmith/podsmith-0123"),
		WithSysctls(map[string]string{"net.ipv4.ping_group_range": "0 2147483647", "kernel.shmmax": "65536"}),
		WithSeccomp(RuntimeDefaultProfile()),
		WithAnnotations(map[string]string{AnnotationSandboxID: "0123", CRIContainerType: ContainerTypeSandbox}),
	)
	require.NoError(t, err)
	return s
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, opts := range []SaveOptions{{}, {Sync: true}, {New: true}, {New: true, Sync: true}} {
		dir := t.TempDir()
		s := fullSpec(t)
		require.NoError(t, Save(dir, s, opts))
		got, err := Load(dir)
		require.NoError(t, err)
		// Equal as JSON: runtime-tools' profile holds empty (non-nil) args
		// slices that JSON, by omitempty, does not keep.
		want, err := json.Marshal(s)
		require.NoError(t, err)
		have, err := json.Marshal(got)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(have))
		assert.Equal(t, s.Process, got.Process)
		assert.Equal(t, s.Mounts, got.Mounts)
		assert.Equal(t, s.Annotations, got.Annotations)
		st, err := os.Stat(filepath.Join(dir, ConfigFile))
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o644), st.Mode().Perm())
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, ents, 1, "no temp file left")
	}
}

func TestSaveErrors(t *testing.T) {
	err := Save(filepath.Join(t.TempDir(), "missing"), fullSpec(t), SaveOptions{})
	require.ErrorIs(t, err, fs.ErrNotExist)

	// A bundle dir that is a file.
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	require.ErrorIs(t, Save(file, fullSpec(t), SaveOptions{}), syscall.ENOTDIR)
}

// With New, an existing config.json is an error, and stays as it was;
// without, it is replaced.
func TestSaveNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ConfigFile)
	require.NoError(t, os.WriteFile(p, []byte("{}"), 0o600))
	require.ErrorIs(t, Save(dir, fullSpec(t), SaveOptions{New: true}), fs.ErrExist)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, "{}", string(data))
	require.NoError(t, Save(dir, fullSpec(t), SaveOptions{}))
	_, err = Load(dir)
	require.NoError(t, err)
	require.ErrorIs(t, Save(filepath.Join(dir, "missing"), fullSpec(t), SaveOptions{New: true}), fs.ErrNotExist)
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(t.TempDir())
	require.ErrorIs(t, err, fs.ErrNotExist)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte("{"), 0o644))
	_, err = Load(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), dir)

	// Only a regular file, never through a symlink, at most MaxSpecSize.
	validDir := t.TempDir()
	require.NoError(t, Save(validDir, fullSpec(t), SaveOptions{}))
	_, err = Load(validDir)
	require.NoError(t, err)
	valid := filepath.Join(validDir, ConfigFile)
	for name, plant := range map[string]func(p string) error{
		"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"device":  func(p string) error { return os.Symlink("/dev/zero", p) },
		"symlink": func(p string) error { return os.Symlink(valid, p) }, // to a spec that loads
		"dir":     func(p string) error { return os.Mkdir(p, 0o755) },
		"huge": func(p string) error {
			if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
				return err
			}
			return os.Truncate(p, MaxSpecSize+1)
		},
	} {
		d := t.TempDir()
		require.NoError(t, plant(filepath.Join(d, ConfigFile)), name)
		_, err := Load(d)
		assert.Error(t, err, name)
	}
}

func BenchmarkGenerateAndSave(b *testing.B) {
	dir := b.TempDir()
	if _, err := os.Stat("/dev/shm"); err == nil {
		// A tmpfs, where bundles live (the run dir).
		d, err := os.MkdirTemp("/dev/shm", "podsmith-bench-")
		require.NoError(b, err)
		b.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	for _, profile := range []struct {
		name string
		p    *specs.LinuxSeccomp
	}{{"runtime-default", RuntimeDefaultProfile()}, {"pause-only", PauseProfile()}} {
		b.Run(profile.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := fullSpec(b)
				s.Linux.Seccomp = profile.p
				if err := Save(dir, s, SaveOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
