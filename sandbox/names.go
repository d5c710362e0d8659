package sandbox

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/podsmith/podsmith/internal/atomicfile"
	"github.com/podsmith/podsmith/internal/flock"
)

// Names are reserved on disk, across processes: StateDir/names/<hash> is a
// symlink to the ID of the sandbox that holds the name, in base64 (ext4
// keeps a target under 60 bytes in the inode; the 64 bytes of hex cost a
// disk block, a fifth of a Build's file system time). symlink(2) is
// atomic, so two Builds of one name cannot both make it; a link whose
// sandbox has no journal (left by a crash, or a hand) is stale, and only
// a Build (which needs the name) and Recover remove it. Reads never do.

// linkTarget is the target of the name link of the sandbox id.
func linkTarget(id string) string {
	b, _ := hex.DecodeString(id)
	return base64.RawURLEncoding.EncodeToString(b)
}

// linkID returns the ID a name link's target names, "" if none.
func linkID(target string) string {
	b, err := base64.RawURLEncoding.DecodeString(target)
	if err != nil || len(b) != idBytes {
		return ""
	}
	return hex.EncodeToString(b)
}

// nameOwner returns the ID a name link holds, "" if none or stale.
func (b *Builder) nameOwner(link string) string {
	target, _ := os.Readlink(link)
	owner := linkID(target)
	if _, err := os.Lstat(b.journalPath(owner)); owner == "" || err != nil {
		return "" // none, or stale
	}
	return owner
}

// reserveName makes the name link of a new sandbox, whose undo is in its
// journal already. A stale link in the way is removed.
func (b *Builder) reserveName(link, name, id string) error {
	err := os.Symlink(linkTarget(id), link)
	if errors.Is(err, fs.ErrExist) {
		target, _ := os.Readlink(link)
		if owner := b.nameOwner(link); owner != "" {
			return &NameReservedError{Name: name, ID: owner}
		}
		if _, err := removeLinkTo(link, target); err != nil {
			return err
		}
		err = os.Symlink(linkTarget(id), link)
	}
	if errors.Is(err, fs.ErrExist) {
		target, _ := os.Readlink(link)
		return &NameReservedError{Name: name, ID: linkID(target)}
	}
	return err
}

// syncNames makes the name links made so far durable: a sandbox whose
// journal outlives a power loss keeps its name.
func (b *Builder) syncNames() error {
	return atomicfile.SyncDir(filepath.Join(b.opts.StateDir, "names"))
}

// releaseName removes a sandbox's own name link, in an undo. Its journal
// exists until the undo is done, so nobody takes the link for stale and
// removes or replaces it meanwhile: no lock is needed.
func releaseName(link, id string) error {
	if cur, err := os.Readlink(link); err != nil || linkID(cur) != id {
		return nil // gone, or another sandbox's now
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// removeLinkTo removes a stale name link if its target is still target,
// and reports whether it did. The check and the removal happen under a lock on the
// names directory, so that two removers of one stale link cannot take
// turns and remove a fresh one made in between.
func removeLinkTo(link, target string) (bool, error) {
	unlock, err := flock.Dir(filepath.Dir(link))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unlock()
	if cur, err := os.Readlink(link); err != nil || cur != target {
		return false, nil // gone, or another sandbox's now
	}
	if err := os.Remove(link); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
