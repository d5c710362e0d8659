// Package journal is the write-ahead log of one sandbox: a file of JSON
// records, one a line, each written after the last, under an exclusive
// lock.
//
// The sandbox Builder appends an undo record before each change it makes
// to the host, so that whatever happens next (an error, a cancelled
// context, a crash) the journal says what to undo. Records are data, not
// closures: a process that never saw the build can replay them. The
// journal does not know what the records mean; the sandbox package does.
//
// Writes are plain write(2) calls, visible to any later reader even after
// this process crashes. Append with durable set also fsyncs the file (and,
// the first time, its directory), for records whose undo must survive a
// reboot (a CNI IPAM allocation on disk); records about mounts and
// namespaces, which a reboot undoes by itself, need not pay for an fsync.
// A write that fails is cut off again, so a later record never lands on
// half a line.
//
// A new journal ends in Reserve NUL bytes, written with its first records:
// room on disk that later records overwrite, so that a disk filled after a
// Build cannot stop its Destroy from recording what it does. Readers stop
// at the first NUL. (The file system reserves the room at that write, as
// fallocate would, but without fallocate's block allocation, which costs
// more than the rest of a journal's life together on ext4.)
//
// The lock is flock(2) on the journal file: it excludes other processes and
// other open files in this process, so a Destroy waits for a Build of the
// same sandbox to finish. A journal is born locked and complete: Create
// writes the first records into a locked temporary file and links it into
// place, so nobody ever sees an empty or unlocked new journal.
//
// A journal has one home from its creation to its removal. Open notices a
// journal that was removed while it waited for the lock and says it does
// not exist.
package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/internal/flock"
	"github.com/podsmith/podsmith/internal/regfile"
)

// Record is one line of a journal. Seq is set by Append. The other fields
// are the caller's; Op says what the record is.
type Record struct {
	Seq  int             `json:"seq"`
	Op   string          `json:"op"`
	Path string          `json:"path,omitempty"`
	Name string          `json:"name,omitempty"`
	Ref  int             `json:"ref,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Journal is an open, locked journal.
type Journal struct {
	f       *os.File // holds the lock
	path    string
	records []Record
	size    int64 // bytes of complete records: the next one goes here
	room    int64 // the file's length: NULs from size to room are reserve
	synced  bool  // the directory entry has been fsynced
	broken  error // a failed write could not be cut off
}

// MaxSize is the most a journal may hold: far more than a sandbox's
// records (its config is at most 4 MiB), and a bound on what a reader
// takes into memory from a file planted in the journals' directory.
const MaxSize = 64 << 20

var (
	// ErrCorrupt is returned for a journal whose content cannot be read
	// back, and for a journal path that is not a regular file.
	ErrCorrupt = errors.New("journal: corrupt")
	// ErrLocked says another holds a journal's lock (for callers that
	// would not wait for it, as the sandbox package's Recover).
	ErrLocked = errors.New("journal: locked")
)

// encode turns records into journal lines, numbering them from seq.
func encode(records []Record, seq int) ([]Record, []byte, error) {
	var buf bytes.Buffer
	out := make([]Record, len(records))
	for i, r := range records {
		r.Seq = seq + i
		b, err := json.Marshal(r)
		if err != nil {
			return nil, nil, fmt.Errorf("journal: %w", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
		out[i] = r
	}
	return out, buf.Bytes(), nil
}

// writeLocked writes data into a new file in dir, locked, open for
// appending, fsynced if sync is set. The file has no name yet (see
// openAnonymous), and tmp is ""; where the file system cannot do that it
// is a temporary file named tmp, which is visible, unlocked, between its
// creation and its flock: its name says which process made it, so that
// StaleTemp does not take it for a crash's leftover.
func writeLocked(dir string, data []byte, sync bool) (f *os.File, tmp string, err error) {
	if forceNamedTemp {
		err = errors.ErrUnsupported
	} else {
		f, err = openAnonymous(dir)
	}
	if errors.Is(err, errors.ErrUnsupported) {
		tmp = tempName(dir)
		f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	}
	if err != nil {
		return nil, "", err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	if err == nil {
		_, err = f.Write(append(data, make([]byte, Reserve)...))
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		f.Close()
		return nil, "", err
	}
	return f, tmp, nil
}

// Reserve is the room a new journal gets on disk beyond its first records,
// as NUL bytes: enough for a teardown's records, so a Destroy on a full
// disk can still write them. Creating a journal on a disk without it
// fails, before anything else is done.
const Reserve = 8 << 10

// forceNamedTemp makes writeLocked use a named temporary file, as on a
// file system without O_TMPFILE (for tests).
var forceNamedTemp = false

// tempName is a new temporary file name in dir:
// .journal-<PID namespace>-<PID>-<random>.tmp.
func tempName(dir string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, fmt.Sprintf(".journal-%d-%d-%s.tmp", pidNamespace(), os.Getpid(), hex.EncodeToString(b[:])))
}

// pidNamespace is the inode of this process's PID namespace, 0 if unknown.
var pidNamespace = sync.OnceValue(func() uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) != nil {
		return 0
	}
	return st.Ino
})

// name gives the file writeLocked returned the new name path, which must
// not exist.
func name(f *os.File, tmp, path string) error {
	if tmp == "" {
		return linkAnonymous(f, path)
	}
	err := os.Link(tmp, path)
	os.Remove(tmp)
	return err
}

// staleTempAge is how old an unlocked temporary file must be to be stale
// whoever made it: a live maker holds its lock microseconds after creating
// it.
const staleTempAge = time.Minute

// StaleTemp reports whether the file name in the journal directory dir is
// a temporary file of this package that a crash left behind: unlocked,
// and either its maker (a process of this PID namespace) is gone or it is
// older than a minute. Such a file holds no journal anyone needs; the
// file it was to become is the one that counts.
func StaleTemp(dir, name string) bool {
	rest, ok := strings.CutPrefix(name, ".journal-")
	if !ok {
		return false
	}
	if rest, ok = strings.CutSuffix(rest, ".tmp"); !ok {
		return false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return false
	}
	ns, err1 := strconv.ParseUint(parts[0], 10, 64)
	pid, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || pid <= 0 {
		return false
	}
	path := filepath.Join(dir, name)
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || Locked(path) {
		return false
	}
	if time.Since(st.ModTime()) > staleTempAge {
		return true
	}
	// A PID means something only in its own namespace.
	if ns == 0 || ns != pidNamespace() {
		return false
	}
	err = unix.Kill(pid, 0)
	return errors.Is(err, unix.ESRCH)
}

// Create creates a new journal at path (which must not exist) holding the
// first records, and returns it locked. The file appears at path already
// locked and complete.
func Create(path string, first ...Record) (*Journal, error) {
	records, data, err := encode(first, 1)
	if err != nil {
		return nil, err
	}
	f, tmp, err := writeLocked(filepath.Dir(path), data, false)
	if err != nil {
		return nil, fmt.Errorf("journal: create: %w", err)
	}
	// link, not rename: an existing journal is not overwritten.
	if err := name(f, tmp, path); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: create: %w", err)
	}
	return &Journal{f: f, path: path, records: records, size: int64(len(data)), room: int64(len(data)) + Reserve}, nil
}

// Open opens and locks an existing journal, waiting for the lock, and
// reads its records. A last line cut short by a crash is ignored (its
// change was never made: records are written before the change).
func Open(path string) (*Journal, error) {
	return OpenKnown(context.Background(), path, Snapshot{})
}

// Snapshot is what a process knows of a journal it wrote: its path, size
// and records.
type Snapshot struct {
	Path    string
	Size    int64
	Records []Record
}

// Snapshot returns what j holds now, for a later OpenKnown.
func (j *Journal) Snapshot() Snapshot {
	return Snapshot{Path: j.path, Size: j.size, Records: slices.Clip(j.records)}
}

// OpenKnown is Open for a journal whose content the caller may already
// know: if the file at path is still the one in known, with nothing
// written after known's records, they are taken from known instead of
// being read and decoded again. It waits for the lock until ctx is done.
func OpenKnown(ctx context.Context, path string, known Snapshot) (*Journal, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	if err := lockContext(ctx, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: lock %s: %w", path, err)
	}
	return finishOpen(f, path, known)
}

func openFile(path string) (*os.File, error) { return openRegular(path, os.O_RDWR) }

// openRegular opens the journal at path, which must be a regular file:
// never through a symlink (planted there, it would have records written
// into its target), never a FIFO or a device, which would block or read
// forever. Anything else is ErrCorrupt.
func openRegular(path string, flag int) (*os.File, error) {
	f, err := regfile.Open(path, flag, false)
	if errors.Is(err, regfile.ErrNotRegular) {
		return nil, fmt.Errorf("journal: %s: %w: %v", path, ErrCorrupt, err)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	return f, nil
}

// lockContext takes f's exclusive lock, waiting until ctx is done. ctx
// ends the wait for a Build or Destroy, which hold the lock exclusively; a
// look at the lock (Locked, which holds it shared for an instant) is
// waited out up to lookWait even after ctx is done, so that a cleanup on a
// finished context does not fail for it.
func lockContext(ctx context.Context, f *os.File) error {
	return flock.Lock(ctx, int(f.Fd()), unix.LOCK_EX, lookWait, afterBusy)
}

// lookWait bounds the wait for looks at a lock once the caller's context
// is done.
const lookWait = time.Second

// afterBusy, if set, runs after each attempt at a lock another holds (for
// tests).
var afterBusy func()

// finishOpen reads a locked journal (or takes known's records).
func finishOpen(f *os.File, path string, known Snapshot) (*Journal, error) {
	// The holder of the lock may have removed the file meanwhile: then the
	// file held here is not the journal any more.
	st, err := f.Stat()
	if err != nil || !samePath(st, path) {
		f.Close()
		return nil, fmt.Errorf("journal: %s was removed: %w", path, fs.ErrNotExist)
	}
	if known.Path == path && known.Records != nil && endsAt(f, known.Size) {
		return &Journal{f: f, path: path, records: slices.Clone(known.Records), size: known.Size, room: max(st.Size(), known.Size)}, nil
	}
	records, size, torn, err := parse(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %s: %w", path, err)
	}
	room := st.Size()
	// Cut a torn last line off, so the next record starts a line of its
	// own instead of completing the torn one into garbage.
	if torn {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: %s: %w", path, err)
		}
		room = size
	}
	return &Journal{f: f, path: path, records: records, size: size, room: room}, nil
}

// endsAt reports whether f's records end at size: nothing follows but its
// reserve.
func endsAt(f *os.File, size int64) bool {
	var b [1]byte
	n, err := f.ReadAt(b[:], size)
	return n == 0 && errors.Is(err, io.EOF) || n == 1 && b[0] == 0
}

// Read reads the records of a journal without locking it: a snapshot for
// listing, which may miss a record being appended.
func Read(path string) ([]Record, error) {
	f, err := openRegular(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	records, _, _, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("journal: %s: %w", path, err)
	}
	return records, nil
}

// Locked reports whether another holds the journal's lock (a Build or a
// Destroy in progress). A journal that is gone is not locked.
func Locked(path string) bool { return flock.Held(path) }

// parse reads the records, and returns the size of the complete lines
// and whether anything but NULs follows them (torn).
func parse(r io.Reader) (records []Record, size int64, torn bool, err error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, 0, false, err
	}
	if len(data) > MaxSize {
		return nil, 0, false, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, MaxSize)
	}
	// The records end at the first NUL: the reserve, or (after a power
	// loss) a block of later records never written back, which were not
	// fsynced, so they are about nothing a reboot leaves.
	if i := bytes.IndexByte(data, 0); i >= 0 {
		torn = len(bytes.Trim(data[i:], "\x00")) > 0
		data = data[:i]
	}
	// A write cut short by a crash leaves a last line without its newline:
	// that record's change was never made (records come first), so drop it.
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		data = data[:i+1]
		torn = true
	}
	size = int64(len(data))
	for line := range bytes.Lines(data) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, 0, false, fmt.Errorf("%w: record %d: %v", ErrCorrupt, len(records)+1, err)
		}
		if rec.Seq != len(records)+1 {
			return nil, 0, false, fmt.Errorf("%w: record %d has seq %d", ErrCorrupt, len(records)+1, rec.Seq)
		}
		records = append(records, rec)
	}
	return records, size, torn, nil
}

// Records returns the records read or appended so far.
func (j *Journal) Records() []Record { return j.records }

// Path returns the journal's path.
func (j *Journal) Path() string { return j.path }

// Append writes r (with the next Seq) as one line. With durable, the write
// is fsynced, and so, once, is the directory holding the journal. A failed
// write is cut off, so the journal stays readable.
func (j *Journal) Append(r Record, durable bool) (Record, error) {
	recs, err := j.AppendAll([]Record{r}, durable)
	if len(recs) == 1 {
		r = recs[0]
	}
	return r, err
}

// AppendAll is Append for several records, in one write: all of them are
// in the journal afterwards, or none.
func (j *Journal) AppendAll(rs []Record, durable bool) ([]Record, error) {
	if j.broken != nil {
		return nil, fmt.Errorf("journal: %s is unwritable: %w", j.path, j.broken)
	}
	recs, b, err := encode(rs, len(j.records)+1)
	if err != nil {
		return nil, err
	}
	if _, err := j.f.WriteAt(b, j.size); err != nil {
		j.cut(int64(len(b)))
		return recs, fmt.Errorf("journal: append to %s: %w", j.path, err)
	}
	j.size += int64(len(b))
	j.room = max(j.room, j.size)
	j.records = append(j.records, recs...)
	if durable {
		if err := j.f.Sync(); err != nil {
			return recs, fmt.Errorf("journal: sync %s: %w", j.path, err)
		}
		if !j.synced {
			if err := atomicfile.SyncDir(filepath.Dir(j.path)); err != nil {
				return recs, fmt.Errorf("journal: %w", err)
			}
			j.synced = true
		}
	}
	return recs, nil
}

// cut undoes a failed write of n bytes at j.size: NULs again over the
// reserve it overwrote (which needs no new room on disk), and the file cut
// back to its length.
func (j *Journal) cut(n int64) {
	if end := min(j.size+n, j.room); end > j.size {
		if _, err := j.f.WriteAt(make([]byte, end-j.size), j.size); err != nil {
			j.broken = err
			return
		}
	}
	if err := j.f.Truncate(j.room); err != nil {
		j.broken = err
	}
}

// samePath reports whether path still names the file st describes.
func samePath(st fs.FileInfo, path string) bool {
	b, err := os.Stat(path)
	return err == nil && os.SameFile(st, b)
}

// Remove removes the journal's file; the journal stays open (and locked)
// until Close.
func (j *Journal) Remove() error {
	if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Close unlocks and closes the journal.
func (j *Journal) Close() error { return j.f.Close() }

// IsNotExist reports whether err says the journal does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
