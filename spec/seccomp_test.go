package spec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRuntimeDefaultProfile(t *testing.T) {
	p := RuntimeDefaultProfile()
	require.NotNil(t, p)
	assert.Equal(t, specs.ActErrno, p.DefaultAction)
	assert.NotEmpty(t, p.Syscalls)
	assert.Equal(t, p, RuntimeDefaultProfile())
	require.NoError(t, ValidateSeccompProfile(p))
}

func TestPauseProfile(t *testing.T) {
	p := PauseProfile()
	require.NoError(t, ValidateSeccompProfile(p))
	assert.Equal(t, specs.ActErrno, p.DefaultAction)
	allowed := p.Syscalls[0]
	assert.Equal(t, specs.ActAllow, allowed.Action)
	for _, sc := range []string{"execve", "wait4", "signalfd4", "exit_group", "futex", "rt_sigreturn"} {
		assert.Contains(t, allowed.Names, sc)
	}
	// Far tighter than RuntimeDefault: nothing that opens sockets, mounts,
	// changes users or loads programs.
	for _, sc := range []string{"socket", "connect", "mount", "setuid", "bpf", "ptrace", "open_by_handle_at"} {
		assert.NotContains(t, allowed.Names, sc)
	}
	var defaultCount int
	for _, r := range RuntimeDefaultProfile().Syscalls {
		defaultCount += len(r.Names)
	}
	assert.Less(t, len(allowed.Names)*3, defaultCount, "a fraction of the default profile")
	clone3 := p.Syscalls[1]
	assert.Equal(t, []string{"clone3"}, clone3.Names)
	require.NotNil(t, clone3.ErrnoRet)
	assert.Equal(t, uint(38), *clone3.ErrnoRet)
}

func writeProfile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.json")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestLoadSeccompProfile(t *testing.T) {
	b, err := json.Marshal(PauseProfile())
	require.NoError(t, err)
	p, err := LoadSeccompProfile(writeProfile(t, string(b)))
	require.NoError(t, err)
	assert.Equal(t, PauseProfile(), p)

	p, err = LoadSeccompProfile(writeProfile(t, `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kexec_load"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}`))
	require.NoError(t, err)
	assert.Equal(t, specs.ActAllow, p.DefaultAction)

	// A symlink to a profile is followed.
	link := filepath.Join(t.TempDir(), "link.json")
	require.NoError(t, os.Symlink(writeProfile(t, string(b)), link))
	p, err = LoadSeccompProfile(link)
	require.NoError(t, err)
	assert.Equal(t, PauseProfile(), p)
}

func TestLoadSeccompProfileRefuses(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	fifo := filepath.Join(t.TempDir(), "fifo.json")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600)) // nobody writes: a read would hang
	huge := writeProfile(t, `{"defaultAction":"SCMP_ACT_ALLOW","flags":[]`+strings.Repeat(" ", maxProfileSize)+`}`)
	tests := []struct {
		name   string
		path   string
		reason string
		is     error
	}{
		{name: "relative path", path: "profiles/pause.json", reason: "absolute"},
		{name: "missing file", path: missing, reason: "cannot read", is: fs.ErrNotExist},
		{name: "a directory", path: t.TempDir(), reason: "not a regular file (a directory)"},
		{name: "a FIFO", path: fifo, reason: "not a regular file (a FIFO)"},
		{name: "a device", path: "/dev/zero", reason: "not a regular file (a device)"},
		{name: "invalid JSON", path: writeProfile(t, `{"defaultAction":`), reason: "not a valid OCI seccomp profile"},
		{name: "not an object", path: writeProfile(t, `[]`), reason: "not a valid OCI seccomp profile"},
		{name: "Docker format", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO","archMap":[]}`), reason: "archMap"},
		{name: "trailing data", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO"} {}`), reason: "trailing data"},
		{name: "unknown default action", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_MAYBE"}`), reason: "defaultAction"},
		{name: "empty default action", path: writeProfile(t, `{}`), reason: "defaultAction"},
		{name: "unknown architecture", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["x86_64"]}`), reason: "architecture"},
		{name: "unknown flag", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO","flags":["FAST"]}`), reason: "flag"},
		{name: "rule without names", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"action":"SCMP_ACT_ALLOW"}]}`), reason: "names no syscall"},
		{name: "bad syscall name", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read write"],"action":"SCMP_ACT_ALLOW"}]}`), reason: "not a syscall name"},
		{name: "bad rule action", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"ALLOW"}]}`), reason: "action"},
		{name: "bad operator", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"EQ"}]}]}`), reason: "op"},
		{name: "notify without listener", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}`), reason: "listenerPath"},
		{name: "notify default without listener", path: writeProfile(t, `{"defaultAction":"SCMP_ACT_NOTIFY"}`), reason: "listenerPath"},
		{name: "too large", path: huge, reason: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadSeccompProfile(tt.path)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalid)
			var se *SeccompError
			require.True(t, errors.As(err, &se))
			assert.Equal(t, tt.path, se.Path)
			assert.Contains(t, se.Error(), tt.reason)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestValidateSeccompProfileReportsEveryProblem(t *testing.T) {
	err := ValidateSeccompProfile(&specs.LinuxSeccomp{
		DefaultAction: "nope",
		Architectures: []specs.Arch{"SCMP_ARCH_"},
		Syscalls:      []specs.LinuxSyscall{{Action: "also-nope"}},
	})
	require.Error(t, err)
	for _, want := range []string{"defaultAction", "architecture", "names no syscall", "also-nope"} {
		assert.Contains(t, err.Error(), want)
	}
}

func FuzzParseSeccompProfile(f *testing.F) {
	b, _ := json.Marshal(PauseProfile())
	f.Add(b)
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_LOG"}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseSeccompProfile(data)
		if err != nil {
			var se *SeccompError
			if !errors.As(err, &se) {
				t.Fatalf("error of the wrong type: %v", err)
			}
			return
		}
		if !slices.Contains(seccompActions, p.DefaultAction) {
			t.Fatalf("accepted default action %q", p.DefaultAction)
		}
		for _, sc := range p.Syscalls {
			if len(sc.Names) == 0 || !slices.Contains(seccompActions, sc.Action) {
				t.Fatalf("accepted rule %+v", sc)
			}
		}
		// What parses, re-encodes and parses to the same profile.
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := ParseSeccompProfile(again)
		if err != nil {
			t.Fatalf("re-encoded profile refused: %v", err)
		}
		a, _ := json.Marshal(p2)
		if string(a) != string(again) {
			t.Fatalf("round trip changed the profile:\n%s\n%s", again, a)
		}
	})
}

// Every call hands out a profile of its own: an edit of one is an edit of
// no other.
func TestProfilesAreCopies(t *testing.T) {
	for name, get := range map[string]func() *specs.LinuxSeccomp{"RuntimeDefault": RuntimeDefaultProfile, "Pause": PauseProfile} {
		a, b := get(), get()
		require.Equal(t, a, b, name)
		require.NotSame(t, a, b, name)
		a.Syscalls[0].Names[0] = "edited"
		a.Architectures[0] = "edited"
		a.Syscalls = nil
		assert.Equal(t, b, get(), name)
	}
	assert.Nil(t, CopySeccompProfile(nil))
}
