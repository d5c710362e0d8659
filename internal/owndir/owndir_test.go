package owndir_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/owndir"
)

func TestMake(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b")
	require.NoError(t, owndir.Make(p, 0o700))
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.True(t, st.IsDir())
	require.NoError(t, owndir.Make(p, 0o700), "twice")

	target := t.TempDir()
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(target, link))
	err = owndir.Make(link, 0o700)
	require.ErrorIs(t, err, owndir.ErrNotOwn)
	assert.Contains(t, err.Error(), "is a symlink")
	// A dangling one too, and nothing is made where it points.
	dangling := filepath.Join(dir, "dangling")
	require.NoError(t, os.Symlink(filepath.Join(target, "x"), dangling))
	require.ErrorIs(t, owndir.Make(dangling, 0o700), owndir.ErrNotOwn)
	assert.NoDirExists(t, filepath.Join(target, "x"))

	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	require.Error(t, owndir.Make(file, 0o700))
	require.ErrorIs(t, owndir.Check(file), owndir.ErrNotOwn)
	require.ErrorIs(t, owndir.Check(filepath.Join(dir, "none")), fs.ErrNotExist)
}
