package mounts

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShmSize(t *testing.T) {
	page := int64(os.Getpagesize())
	tests := []struct {
		name      string
		requested int64
		max       int64
		want      int64
		wantErr   bool
	}{
		{name: "zero is the default", requested: 0, want: DefaultShmSize},
		{name: "page multiple kept", requested: 16 * page, want: 16 * page},
		{name: "one byte rounds to a page", requested: 1, want: page},
		{name: "rounded up", requested: 1<<20 + 1, want: 1<<20 + page},
		{name: "exactly the cap", requested: 1 << 30, max: 1 << 30, want: 1 << 30},
		{name: "default cap", requested: DefaultMaxShmSize, want: DefaultMaxShmSize},
		{name: "over the default cap", requested: DefaultMaxShmSize + 1, wantErr: true},
		{name: "over the cap", requested: 1<<30 + 1, max: 1 << 30, wantErr: true},
		{name: "rounding crosses an unaligned cap", requested: 1, max: page / 2, wantErr: true},
		{name: "default over a small cap", requested: 0, max: 1 << 20, wantErr: true},
		{name: "negative", requested: -1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ShmSize(tt.requested, tt.max)
			if tt.wantErr {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrInvalid)
				var se *SizeError
				require.True(t, errors.As(err, &se))
				assert.NotEmpty(t, se.Reason)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Zero(t, got%page)
		})
	}
}

func TestMountShmRefusesBadSizeBeforeTouchingTheHost(t *testing.T) {
	dir := t.TempDir() + "/shm"
	_, err := MountShm(dir, ShmOptions{Size: -5})
	require.ErrorIs(t, err, ErrInvalid)
	assert.NoDirExists(t, dir)
}

func TestSpecEntries(t *testing.T) {
	m := ReadOnlyBind("/run/podsmith/x/resolv.conf", "/etc/resolv.conf")
	assert.Equal(t, "/etc/resolv.conf", m.Destination)
	assert.Equal(t, "/run/podsmith/x/resolv.conf", m.Source)
	assert.Equal(t, "bind", m.Type)
	assert.Equal(t, []string{"bind", "ro", "nosuid", "nodev", "noexec"}, m.Options)

	s := ShmBind("/run/podsmith/x/shm")
	assert.Equal(t, "/dev/shm", s.Destination)
	assert.Equal(t, []string{"bind", "rw", "nosuid", "nodev", "noexec"}, s.Options)

	// Each call returns its own options slice: editing one spec's mount
	// must not change another's.
	m.Options[0] = "rbind"
	assert.Equal(t, "bind", ReadOnlyBind("a", "b").Options[0])
}
