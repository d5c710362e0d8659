package netns

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
)

// usernsOf returns a UserNS for a test: pinned in dir, 65536 IDs from
// 2³⁰, catatonit as the helper.
func usernsOf(t *testing.T, dir string) UserNS {
	t.Helper()
	bins := testutil.RequireBinaries(t, "catatonit")
	m := []specs.LinuxIDMapping{{HostID: 1 << 30, ContainerID: 0, Size: 65536}}
	return UserNS{Pin: filepath.Join(dir, "userns"), UIDs: m, GIDs: m, Helper: bins["catatonit"], HelperArgs: []string{"-P"}}
}

// NewInUserNS pins a user namespace with the mappings and a network
// namespace it owns, with lo up.
func TestNewInUserNS(t *testing.T) {
	dir := pinDir(t)
	u := usernsOf(t, dir)
	ns, err := NewInUserNS(dir, "pod-u", u)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Remove(); _ = Remove(u.Pin) })

	var user, owner unix.Stat_t
	require.NoError(t, unix.Stat(u.Pin, &user))
	fd, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	ofd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0xb701, 0) // NS_GET_USERNS
	unix.Close(fd)
	require.Zero(t, errno)
	require.NoError(t, unix.Fstat(int(ofd), &owner))
	unix.Close(int(ofd))
	assert.Equal(t, user.Ino, owner.Ino, "the netns belongs to the pinned user namespace")
	var self unix.Stat_t
	require.NoError(t, unix.Stat("/proc/self/ns/user", &self))
	assert.NotEqual(t, self.Ino, user.Ino)

	var loUp bool
	require.NoError(t, ns.Do(func() error {
		lo, err := net.InterfaceByName("lo")
		loUp = err == nil && lo.Flags&net.FlagUp != 0
		return err
	}))
	assert.True(t, loUp)

	require.NoError(t, ns.Remove())
	require.NoError(t, Remove(u.Pin))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents)
}

// Every failure leaves neither pin.
func TestNewInUserNSFailures(t *testing.T) {
	dir := pinDir(t)
	u := usernsOf(t, dir)
	left := func() []string {
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}

	// Refused before anything is made.
	for _, bad := range []func(*UserNS){
		func(u *UserNS) { u.UIDs = nil },
		func(u *UserNS) { u.Helper = "" },
		func(u *UserNS) { u.Pin = "" },
	} {
		b := u
		bad(&b)
		_, err := NewInUserNS(dir, "pod-u", b)
		require.Error(t, err)
	}
	_, err := NewInUserNS(dir, "a/b", u)
	require.ErrorIs(t, err, ErrInvalidName)

	// A pin that exists, either one: ErrExist, and the other is not left.
	for _, existing := range []string{filepath.Join(dir, "pod-u"), u.Pin} {
		require.NoError(t, os.WriteFile(existing, nil, 0o444))
		_, err = NewInUserNS(dir, "pod-u", u)
		require.ErrorIs(t, err, ErrExist)
		require.NoError(t, os.Remove(existing))
		assert.Empty(t, left(), "next to %s", existing)
	}

	// A helper that cannot run; mappings the kernel refuses.
	b := u
	b.Helper = filepath.Join(dir, "no-such-helper")
	_, err = NewInUserNS(dir, "pod-u", b)
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Empty(t, left())
	b = u
	b.UIDs = []specs.LinuxIDMapping{{HostID: 1<<32 - 1, ContainerID: 0, Size: 1}}
	_, err = NewInUserNS(dir, "pod-u", b)
	require.Error(t, err)
	assert.Empty(t, left())

	// A failure once the helper runs, before the pins are bound.
	injected := errors.New("injected at userns")
	failAt = func(s string) error {
		if s == "userns" {
			return injected
		}
		return nil
	}
	_, err = NewInUserNS(dir, "pod-u", u)
	failAt = nil
	require.ErrorIs(t, err, injected)
	assert.Empty(t, left()) // and the leak check: nothing mounted under dir
}
