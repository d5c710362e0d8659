package nspin_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/nspin"
)

// pinDir gives a privileged test its own pin dir under the leak checker.
func pinDir(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	root := t.TempDir()
	dir := filepath.Join(root, "pins")
	testutil.CheckLeaks(t, testutil.Leaks{Roots: []string{root}, Skeleton: []string{dir}})
	return dir
}

func ownInode(t *testing.T, kind string) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat("/proc/thread-self/ns/"+kind, &st))
	return st.Ino
}

func readProc(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func TestUTS(t *testing.T) {
	dir := pinDir(t)
	host, err := os.Hostname()
	require.NoError(t, err)
	ns, err := nspin.NewUTS(dir, "pod-uts", "pod-a-host")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "pod-uts"), ns.Path())
	assert.Equal(t, nspin.UTS, ns.Kind())
	ino, err := ns.Inode()
	require.NoError(t, err)
	assert.NotEqual(t, ownInode(t, "uts"), ino, "a new namespace, not ours")

	var inside string
	require.NoError(t, ns.Do(func() error {
		var err error
		inside, err = os.Hostname()
		return err
	}))
	assert.Equal(t, "pod-a-host", inside)
	after, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, host, after, "the node's hostname is untouched")

	// Open checks the kind: a UTS pin is not an IPC namespace, nor a
	// network one.
	_, err = nspin.Open(nspin.UTS, ns.Path())
	require.NoError(t, err)
	_, err = nspin.Open(nspin.IPC, ns.Path())
	require.ErrorIs(t, err, nspin.ErrWrongKind)
	_, err = netns.Open(ns.Path())
	require.ErrorIs(t, err, netns.ErrNotNetNS)

	// A pin is never overwritten.
	_, err = nspin.NewUTS(dir, "pod-uts", "other")
	require.ErrorIs(t, err, nspin.ErrExist)
	require.ErrorIs(t, err, os.ErrExist)

	require.NoError(t, ns.Remove())
	require.NoError(t, ns.Remove(), "twice")
	assert.NoFileExists(t, ns.Path())
	_, err = nspin.Open(nspin.UTS, ns.Path())
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestIPC(t *testing.T) {
	dir := pinDir(t)
	hostShmmni := readProc(t, "/proc/sys/kernel/shmmni")
	ns, err := nspin.NewIPC(dir, "pod-ipc", map[string]string{"kernel.shmmni": "1234", "fs/mqueue/msg_max": "17"})
	require.NoError(t, err)
	ino, err := ns.Inode()
	require.NoError(t, err)
	assert.NotEqual(t, ownInode(t, "ipc"), ino)
	var shmmni, msgMax string
	require.NoError(t, ns.Do(func() error {
		shmmni = readProc(t, "/proc/sys/kernel/shmmni")
		msgMax = readProc(t, "/proc/sys/fs/mqueue/msg_max")
		return nil
	}))
	assert.Equal(t, "1234", shmmni)
	assert.Equal(t, "17", msgMax)
	assert.Equal(t, hostShmmni, readProc(t, "/proc/sys/kernel/shmmni"), "the node's value is untouched")

	// fn's error comes back as it is.
	boom := errors.New("boom")
	require.ErrorIs(t, ns.Do(func() error { return boom }), boom)
	require.NoError(t, nspin.Remove(ns.Path()))
}

// A setup that fails leaves nothing: no pin file, no mount (the leak
// check), and says what failed.
func TestSetupFailureLeavesNothing(t *testing.T) {
	dir := pinDir(t)
	var se *nspin.SetupError
	_, err := nspin.NewIPC(dir, "bad-value", map[string]string{"kernel.shmmni": "not-a-number"})
	require.ErrorAs(t, err, &se)
	require.ErrorIs(t, err, nspin.ErrSetup)
	assert.Equal(t, "kernel.shmmni", se.What)
	assert.NoFileExists(t, filepath.Join(dir, "bad-value"))

	_, err = nspin.NewIPC(dir, "no-such", map[string]string{"kernel.shm_no_such_knob": "1"})
	require.ErrorAs(t, err, &se)
	assert.NoFileExists(t, filepath.Join(dir, "no-such"))

	// Refused before anything is made.
	for _, bad := range []map[string]string{{"net.ipv4.ip_forward": "1"}, {"kernel.hostname": "x"}} {
		_, err = nspin.NewIPC(dir, "wrong-ns", bad)
		require.ErrorIs(t, err, nspin.ErrSetup)
	}
	for _, h := range []string{"", strings.Repeat("h", 65)} {
		_, err = nspin.NewUTS(dir, "bad-host", h)
		require.ErrorIs(t, err, nspin.ErrSetup)
	}
	for _, name := range []string{"", "..", "a/b"} {
		_, err = nspin.NewUTS(dir, name, "h")
		require.ErrorIs(t, err, netns.ErrInvalidName)
	}
	ents, _ := os.ReadDir(dir)
	assert.Empty(t, ents)
}

// A stale pin (as after a reboot: an empty file) is no namespace, and
// Remove takes it away.
func TestStalePin(t *testing.T) {
	dir := pinDir(t)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	stale := filepath.Join(dir, "stale")
	require.NoError(t, os.WriteFile(stale, nil, 0o444))
	_, err := nspin.Open(nspin.IPC, stale)
	require.ErrorIs(t, err, nspin.ErrWrongKind)
	require.NoError(t, nspin.Remove(stale))
	assert.NoFileExists(t, stale)
	require.NoError(t, nspin.Remove(filepath.Join(dir, "never")))
}
