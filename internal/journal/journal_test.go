package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestCreateAppendOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	j, err := Create(p)
	require.NoError(t, err)
	r1, err := j.Append(Record{Op: "remove-dir", Path: "/run/x"}, false)
	require.NoError(t, err)
	assert.Equal(t, 1, r1.Seq)
	r2, err := j.Append(Record{Op: "cni-del", Data: json.RawMessage(`{"id":"x"}`)}, true)
	require.NoError(t, err)
	assert.Equal(t, 2, r2.Seq)
	assert.Len(t, j.Records(), 2)
	require.NoError(t, j.Close())

	_, err = Create(p)
	require.ErrorIs(t, err, fs.ErrExist)

	j, err = Open(p)
	require.NoError(t, err)
	assert.Equal(t, []Record{r1, r2}, j.Records())
	r3, err := j.Append(Record{Op: "undone", Ref: 2}, false)
	require.NoError(t, err)
	assert.Equal(t, 3, r3.Seq)
	require.NoError(t, j.Close())

	recs, err := Read(p)
	require.NoError(t, err)
	assert.Equal(t, []Record{r1, r2, r3}, recs)
}

func TestTornLastLineIsDropped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	require.NoError(t, os.WriteFile(p, []byte(`{"seq":1,"op":"a"}`+"\n"+`{"seq":2,"op":"b`), 0o600))
	recs, err := Read(p)
	require.NoError(t, err)
	assert.Equal(t, []Record{{Seq: 1, Op: "a"}}, recs)

	// Open cuts the torn line off: the next record starts a line of its
	// own and everything reads back.
	j, err := Open(p)
	require.NoError(t, err)
	r, err := j.Append(Record{Op: "c"}, false)
	require.NoError(t, err)
	assert.Equal(t, 2, r.Seq)
	require.NoError(t, j.Close())
	recs, err = Read(p)
	require.NoError(t, err)
	assert.Equal(t, []Record{{Seq: 1, Op: "a"}, {Seq: 2, Op: "c"}}, recs)
}

// Records end at the first NUL: the reserve, or a block of records a power
// loss kept from the disk. What follows a hole is dropped, and the next
// record goes right after the last one read.
func TestRecordsEndAtTheFirstNUL(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	hole := string(make([]byte, 100))
	require.NoError(t, os.WriteFile(p, []byte(`{"seq":1,"op":"a"}`+"\n"+hole+`{"seq":3,"op":"c"}`+"\n"+hole), 0o600))
	recs, err := Read(p)
	require.NoError(t, err)
	assert.Equal(t, []Record{{Seq: 1, Op: "a"}}, recs)

	j, err := Open(p)
	require.NoError(t, err)
	r, err := j.Append(Record{Op: "b"}, false)
	require.NoError(t, err)
	assert.Equal(t, 2, r.Seq)
	require.NoError(t, j.Close())
	recs, err = Read(p)
	require.NoError(t, err)
	assert.Equal(t, []Record{{Seq: 1, Op: "a"}, {Seq: 2, Op: "b"}}, recs)
}

// Records overwrite the reserve: a journal does not grow until it is used
// up.
func TestRecordsFillTheReserve(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	j, err := Create(p, Record{Op: "begin"})
	require.NoError(t, err)
	st, err := os.Stat(p)
	require.NoError(t, err)
	size := st.Size()
	assert.Greater(t, size, int64(Reserve))
	_, err = j.Append(Record{Op: "a", Path: strings.Repeat("p", 100)}, true)
	require.NoError(t, err)
	st, err = os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, size, st.Size())
	for range Reserve / 100 {
		_, err = j.Append(Record{Op: "a", Path: strings.Repeat("p", 100)}, false)
		require.NoError(t, err)
	}
	st, err = os.Stat(p)
	require.NoError(t, err)
	assert.Greater(t, st.Size(), size)
	require.NoError(t, j.Close())
	recs, err := Read(p)
	require.NoError(t, err)
	assert.Len(t, recs, 2+Reserve/100)
}

func TestOpenKnown(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	j, err := Create(p)
	require.NoError(t, err)
	_, err = j.Append(Record{Op: "a"}, false)
	require.NoError(t, err)
	snap := j.Snapshot()
	require.NoError(t, j.Close())

	// Unchanged: the known records are used (a wrong one proves it).
	known := snap
	known.Records = []Record{{Seq: 1, Op: "known"}}
	j, err = OpenKnown(context.Background(), p, known)
	require.NoError(t, err)
	assert.Equal(t, "known", j.Records()[0].Op)
	_, err = j.Append(Record{Op: "b"}, false)
	require.NoError(t, err)
	require.NoError(t, j.Close())

	// Changed since (another record): read from the file.
	j, err = OpenKnown(context.Background(), p, known)
	require.NoError(t, err)
	assert.Equal(t, []Record{{Seq: 1, Op: "a"}, {Seq: 2, Op: "b"}}, j.Records())
	require.NoError(t, j.Close())

	// Another path: read from the file.
	known.Path = p + ".other"
	known.Size = 0
	j, err = OpenKnown(context.Background(), p, known)
	require.NoError(t, err)
	assert.Len(t, j.Records(), 2)
	require.NoError(t, j.Close())
}

func TestOpenGoneWhileWaiting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	j, err := Create(p)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := Open(p) // waits for the lock, then finds the file removed
		done <- err
	}()
	// Whether Open got the descriptor before or after the removal, it
	// must not return a journal that is no longer at p.
	require.NoError(t, j.Remove())
	require.NoError(t, j.Close())
	require.ErrorIs(t, <-done, fs.ErrNotExist)
}

func TestCorruptJournals(t *testing.T) {
	for name, content := range map[string]string{
		"garbage line":  "{\"seq\":1,\"op\":\"a\"}\nnot json\n",
		"seq gap":       "{\"seq\":1,\"op\":\"a\"}\n{\"seq\":3,\"op\":\"b\"}\n",
		"seq not first": "{\"seq\":2,\"op\":\"a\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "journal")
			require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
			_, err := Read(p)
			require.ErrorIs(t, err, ErrCorrupt)
			_, err = Open(p)
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "none"))
	require.True(t, IsNotExist(err))
	_, err = Read(filepath.Join(t.TempDir(), "none"))
	require.True(t, IsNotExist(err))
	_, err = Create(filepath.Join(t.TempDir(), "no", "dir"))
	require.True(t, IsNotExist(err))
}

func TestLockExcludesASecondOpener(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	j, err := Create(p)
	require.NoError(t, err)
	other, err := os.Open(p)
	require.NoError(t, err)
	defer other.Close()
	require.ErrorIs(t, unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB), unix.EWOULDBLOCK, "locked while open")
	require.NoError(t, j.Close())
	require.NoError(t, unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB), "free once closed")
	require.NoError(t, unix.Flock(int(other.Fd()), unix.LOCK_UN))

	// Open takes the lock too.
	j, err = Open(p)
	require.NoError(t, err)
	require.ErrorIs(t, unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB), unix.EWOULDBLOCK)
	require.NoError(t, j.Close())
}

func TestCreateIsBornLockedAndComplete(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "journal")
	j, err := Create(p, Record{Op: "begin", Data: json.RawMessage(`{"id":"x"}`)}, Record{Op: "release-name", Path: "/n"})
	require.NoError(t, err)
	assert.Equal(t, []Record{{Seq: 1, Op: "begin", Data: json.RawMessage(`{"id":"x"}`)}, {Seq: 2, Op: "release-name", Path: "/n"}}, j.Records())
	// Whoever opens it sees both records and a lock held.
	recs, err := Read(p)
	require.NoError(t, err)
	assert.Len(t, recs, 2)
	assert.True(t, Locked(p))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 1, "no temp file left")

	_, err = Create(p)
	require.ErrorIs(t, err, fs.ErrExist, "never overwrites")
	r, err := j.Append(Record{Op: "more"}, false)
	require.NoError(t, err)
	assert.Equal(t, 3, r.Seq)
	require.NoError(t, j.Close())
	assert.False(t, Locked(p))
	assert.False(t, Locked(filepath.Join(dir, "none")))

	j, err = Open(p)
	require.NoError(t, err)
	assert.Len(t, j.Records(), 3)
	require.NoError(t, j.Close())
	_, err = Open(filepath.Join(dir, "none"))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestOpenKnownGivesUpWithTheContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	j, err := Create(p)
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = OpenKnown(ctx, p, Snapshot{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// A context that is done ends the wait for a holder of the lock (a Build,
// a Destroy), not for a look at it (Locked, shared for an instant): a
// cleanup on a finished context must not fail for a List in another
// process.
func TestOpenOnADoneContextWaitsOutALook(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	j, err := Create(p, Record{Op: "begin"})
	require.NoError(t, err)
	require.NoError(t, j.Close())
	look, err := os.Open(p)
	require.NoError(t, err)
	defer look.Close()
	require.NoError(t, unix.Flock(int(look.Fd()), unix.LOCK_SH))
	tries := 0
	afterBusy = func() {
		tries++
		if tries == 3 {
			require.NoError(t, unix.Flock(int(look.Fd()), unix.LOCK_UN))
		}
	}
	t.Cleanup(func() { afterBusy = nil })
	done, cancel := context.WithCancel(context.Background())
	cancel()
	j, err = OpenKnown(done, p, Snapshot{})
	require.NoError(t, err)
	assert.Equal(t, 3, tries, "waited while the look held the lock")
	require.NoError(t, j.Close())

	// An exclusive holder is not waited for.
	holder, err := Open(p)
	require.NoError(t, err)
	defer holder.Close()
	tries = 0
	_, err = OpenKnown(done, p, Snapshot{})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, tries)
}

func TestStaleTemp(t *testing.T) {
	dir := t.TempDir()
	// A process that is gone.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	dead := cmd.Process.Pid
	ns := pidNamespace()
	require.NotZero(t, ns)
	mk := func(name string) string {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o600))
		return name
	}
	assert.True(t, StaleTemp(dir, mk(fmt.Sprintf(".journal-%d-%d-0123abcd0123abcd.tmp", ns, dead))), "its maker is gone")
	assert.False(t, StaleTemp(dir, mk(fmt.Sprintf(".journal-%d-%d-0123abcd0123abcd.tmp", ns, os.Getpid()))), "its maker lives")
	otherNS := mk(fmt.Sprintf(".journal-%d-%d-0123abcd0123abcd.tmp", ns+1, dead))
	assert.False(t, StaleTemp(dir, otherNS), "a PID of another namespace says nothing")
	old := time.Now().Add(-2 * staleTempAge)
	require.NoError(t, os.Chtimes(filepath.Join(dir, otherNS), old, old))
	assert.True(t, StaleTemp(dir, otherNS), "unlocked for minutes: stale, whoever made it")

	locked := mk(fmt.Sprintf(".journal-%d-%d-1111abcd0123abcd.tmp", ns, dead))
	require.NoError(t, os.Chtimes(filepath.Join(dir, locked), old, old))
	f, err := os.Open(filepath.Join(dir, locked))
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, unix.Flock(int(f.Fd()), unix.LOCK_EX))
	assert.False(t, StaleTemp(dir, locked), "held by someone")

	for _, name := range []string{".journal-.tmp", ".journal-x-y-z.tmp", ".journal-1-0-a.tmp", ".journal-1-2.tmp", "0123456789abcdef", ".journal-1-2-x.json"} {
		assert.False(t, StaleTemp(dir, mk(name)), name)
	}
	assert.False(t, StaleTemp(dir, fmt.Sprintf(".journal-%d-%d-2222abcd0123abcd.tmp", ns, dead)), "not there")
}

// On a file system without O_TMPFILE, Create goes through named
// temporary files, which they leave behind neither on success nor on
// failure, and which StaleTemp never takes while their maker lives.
func TestNamedTempFallback(t *testing.T) {
	forceNamedTemp = true
	t.Cleanup(func() { forceNamedTemp = false })
	dir := t.TempDir()
	from := filepath.Join(dir, "a")
	j, err := Create(from, Record{Op: "begin"})
	require.NoError(t, err)
	assert.True(t, Locked(from))
	_, err = Create(from)
	require.ErrorIs(t, err, fs.ErrExist)
	_, err = Create(filepath.Join(dir, "none", "c"))
	require.Error(t, err)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temporary file left")
	assert.Equal(t, "a", ents[0].Name())
	require.NoError(t, j.Close())

	f, tmp, err := writeLocked(dir, []byte("{}\n"), false)
	require.NoError(t, err)
	assert.NotEmpty(t, tmp)
	assert.False(t, StaleTemp(dir, filepath.Base(tmp)), "locked, and its maker lives")
	require.NoError(t, f.Close())
	assert.False(t, StaleTemp(dir, filepath.Base(tmp)), "unlocked, but its maker lives")
	require.NoError(t, os.Remove(tmp))
}
