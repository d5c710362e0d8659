// Package journal is the write-ahead log of one sandbox: an append-only
// file of JSON records, one a line, under an exclusive lock.
//
// The sandbox Builder appends an undo record before each change it makes
// to the host, so that whatever happens next (an error, a cancelled
// context, a crash) the journal says what to undo. Records are data, not
// closures: a process that never saw the build can replay them. The
// journal does not know what the records mean; the sandbox package does.
//
// Writes are plain write(2) calls, visible to any later reader even after
// this process crashes. Append with Durable set also fsyncs the file (and,
// the first time, its directory and the directory's parent), for records
// whose undo must survive a reboot (a CNI IPAM allocation on disk); records
// about mounts and namespaces, which a reboot undoes by itself, need not pay
// for an fsync.
//
// The lock is flock(2) on the journal file: it excludes other processes and
// other open files in this process, so a Destroy waits for a Build of the
// same sandbox to finish.
//
// A journal can move (MoveTo): a sandbox's journal starts on a tmpfs,
// where writing it costs next to nothing, and moves to persistent storage
// the moment it must record something that outlives a reboot. Open
// notices a journal that moved (or was removed) while it waited for the
// lock and returns ErrGone, so the caller looks it up again.
package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/atomicfile"
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
	f       *os.File
	path    string
	records []Record
	synced  bool     // the directory entries have been fsynced
	lock    *os.File // after MoveTo: the descriptor holding the lock
	size    int64    // bytes written or read
}

// ErrCorrupt is returned for a journal whose content cannot be read back.
var ErrCorrupt = errors.New("journal: corrupt")

// ErrGone is returned by Open for a journal that was moved or removed
// while Open waited for its lock. It matches fs.ErrNotExist.
var ErrGone = fmt.Errorf("journal: moved or removed: %w", fs.ErrNotExist)

// Create creates a new journal at path (which must not exist) and locks it.
func Create(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: create: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: lock %s: %w", path, err)
	}
	return &Journal{f: f, path: path}, nil
}

// Open opens and locks an existing journal, waiting for the lock, and
// reads its records. A last line cut short by a crash is ignored (its
// change was never made: records are written before the change).
func Open(path string) (*Journal, error) { return OpenKnown(path, Snapshot{}) }

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

// OpenKnown is Open for a journal whose content the caller already knows:
// if the file at path is still the one in known, of the same size, its
// records are taken from known instead of being read and decoded again.
func OpenKnown(path string, known Snapshot) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: open: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: lock %s: %w", path, err)
	}
	// The holder of the lock may have moved or removed the file meanwhile:
	// then the file held here is not the journal any more.
	if !samePath(f, path) {
		f.Close()
		return nil, fmt.Errorf("journal: %s: %w", path, ErrGone)
	}
	if known.Path == path && known.Records != nil {
		if st, err := f.Stat(); err == nil && st.Size() == known.Size {
			return &Journal{f: f, path: path, records: slices.Clone(known.Records), size: known.Size}, nil
		}
	}
	records, size, err := parse(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %s: %w", path, err)
	}
	// Cut a torn last line off, so the next record starts a line of its
	// own instead of completing the torn one into garbage.
	if st, err := f.Stat(); err == nil && st.Size() > size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: %s: %w", path, err)
		}
	}
	return &Journal{f: f, path: path, records: records, size: size}, nil
}

// Read reads the records of a journal without locking it: a snapshot for
// listing, which may miss a record being appended.
func Read(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	records, _, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("journal: %s: %w", path, err)
	}
	return records, nil
}

// parse reads the records, and returns the size of the complete lines.
func parse(r io.Reader) ([]Record, int64, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, err
	}
	// A write cut short by a crash leaves a last line without its newline:
	// that record's change was never made (records come first), so drop it.
	if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
		data = data[:i+1]
	}
	size := int64(len(data))
	var records []Record
	for line := range bytes.Lines(data) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, 0, fmt.Errorf("%w: record %d: %v", ErrCorrupt, len(records)+1, err)
		}
		if rec.Seq != len(records)+1 {
			return nil, 0, fmt.Errorf("%w: record %d has seq %d", ErrCorrupt, len(records)+1, rec.Seq)
		}
		records = append(records, rec)
	}
	return records, size, nil
}

// Records returns the records read or appended so far.
func (j *Journal) Records() []Record { return j.records }

// Path returns the journal's path.
func (j *Journal) Path() string { return j.path }

// Append writes r (with the next Seq) as one line. With durable, the write
// is fsynced, and so are, once, the directory holding the journal and that
// directory's parent, so that the journal itself survives a power loss.
func (j *Journal) Append(r Record, durable bool) (Record, error) {
	r.Seq = len(j.records) + 1
	b, err := json.Marshal(r)
	if err != nil {
		return r, fmt.Errorf("journal: %w", err)
	}
	b = append(b, '\n')
	if _, err := j.f.Write(b); err != nil {
		return r, fmt.Errorf("journal: append to %s: %w", j.path, err)
	}
	j.size += int64(len(b))
	j.records = append(j.records, r)
	if durable {
		if err := j.f.Sync(); err != nil {
			return r, fmt.Errorf("journal: sync %s: %w", j.path, err)
		}
		if !j.synced {
			dir := filepath.Dir(j.path)
			if err := atomicfile.SyncDir(dir); err != nil {
				return r, fmt.Errorf("journal: %w", err)
			}
			if err := atomicfile.SyncDir(filepath.Dir(dir)); err != nil {
				return r, fmt.Errorf("journal: %w", err)
			}
			j.synced = true
		}
	}
	return r, nil
}

// MoveTo moves the journal to path, durably, appending the extra records
// on the way: the records go to a temporary file in path's directory,
// locked, fsynced and renamed into place, the directory fsynced (two
// fsyncs, however many records); then the old file is removed and appends
// go to the new one. Whoever waited for the old file's lock gets ErrGone
// from Open and finds the new one (locked until this journal is closed).
func (j *Journal) MoveTo(path string, extra ...Record) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("journal: move: %w", err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("journal: move to %s: %w", path, err)
	}
	if err := unix.Flock(int(tmp.Fd()), unix.LOCK_EX); err != nil {
		return fail(err)
	}
	records := slices.Clone(j.records)
	for _, r := range extra {
		r.Seq = len(records) + 1
		records = append(records, r)
	}
	var buf bytes.Buffer
	for _, r := range records {
		b, err := json.Marshal(r)
		if err != nil {
			return fail(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fail(err)
	}
	// From here the new file is the journal; reopen it for appending (the
	// temp file's descriptor keeps the lock until Close).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	old := j.f
	oldPath := j.path
	j.f, j.path, j.synced, j.lock, j.size, j.records = f, path, true, tmp, int64(buf.Len()), records
	if err := os.Remove(oldPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: move: remove %s: %w", oldPath, err)
	}
	old.Close()
	return nil
}

// samePath reports whether path still names the file f.
func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
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
func (j *Journal) Close() error {
	if j.lock != nil {
		j.lock.Close()
	}
	return j.f.Close()
}

// IsNotExist reports whether err says the journal does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
