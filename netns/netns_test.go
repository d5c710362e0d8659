package netns

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "podsmith-0123", "cni-7c15d3d2-d310", strings.Repeat("x", 255), "..a", "a.b"} {
		assert.NoError(t, ValidateName(ok), ok)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "/a", "a/", "../x", "a\x00b", strings.Repeat("x", 256)} {
		err := ValidateName(bad)
		require.Error(t, err, "%q", bad)
		assert.ErrorIs(t, err, ErrInvalidName)
		var ne *NameError
		require.ErrorAs(t, err, &ne)
		assert.Equal(t, bad, ne.Name)
	}
}

func TestNewRefusesBadNamesBeforeTouchingTheHost(t *testing.T) {
	dir := t.TempDir() + "/pins"
	for _, bad := range []string{"", "..", "a/b"} {
		_, err := New(dir, bad)
		require.ErrorIs(t, err, ErrInvalidName)
	}
	assert.NoDirExists(t, dir)
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", "..", "a/b", "", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		// An accepted name is a single path element that stays in dir.
		if name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 || name == "" {
			t.Fatalf("accepted %q", name)
		}
	})
}
