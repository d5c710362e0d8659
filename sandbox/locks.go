package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"
)

// networkLock is the file whose flock keeps a CNI GC (CollectNetwork,
// exclusive) away from attachments in progress (Build's network step,
// shared), across processes.
func (b *Builder) networkLock() string { return filepath.Join(b.opts.StateDir, "network.lock") }

// lockNetwork takes the network lock (unix.LOCK_SH or LOCK_EX), waiting
// until ctx is done, and returns its release.
func (b *Builder) lockNetwork(ctx context.Context, how int) (func(), error) {
	f, err := os.OpenFile(b.networkLock(), os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flockContext(ctx, f, how); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// flockContext takes a flock, waiting (with growing pauses: flock cannot be
// interrupted) until ctx is done.
func flockContext(ctx context.Context, f *os.File, how int) error {
	wait := 200 * time.Microsecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// holdLabel records that a sandbox of this Builder holds an SELinux
// process label's MCS pair (reserved in go-selinux's in-process list).
func (b *Builder) holdLabel(label string) {
	if label == "" {
		return
	}
	b.labelMu.Lock()
	defer b.labelMu.Unlock()
	if b.labels == nil {
		b.labels = map[string]bool{}
	}
	b.labels[label] = true
}

// releaseHeldLabel gives a held label's MCS pair back, once: a Destroy
// retried after its undone record could not be written must not release a
// pair another sandbox has been given since.
func (b *Builder) releaseHeldLabel(label string) {
	b.labelMu.Lock()
	defer b.labelMu.Unlock()
	if b.labels[label] {
		delete(b.labels, label)
		selinux.ReleaseLabel(label)
	}
}
