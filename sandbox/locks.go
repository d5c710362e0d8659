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

// The network lock keeps a CNI GC (CollectNetwork) away from attachments
// in progress (Build's network step), across processes: a Build holds
// network.lock shared from the move of its journal to the end of its ADD;
// a GC takes it exclusively. To get in at all between overlapping Builds,
// a GC first closes network.gate (exclusive), which every Build passes
// (shared, for an instant) on its way to network.lock.
func (b *Builder) networkLock() string { return filepath.Join(b.opts.StateDir, "network.lock") }

func (b *Builder) networkGate() string { return filepath.Join(b.opts.StateDir, "network.gate") }

// lockNetwork takes the network lock (unix.LOCK_SH for a Build, LOCK_EX
// for a GC), waiting until ctx is done, and returns its release.
func (b *Builder) lockNetwork(ctx context.Context, how int) (func(), error) {
	gate, err := os.OpenFile(b.networkGate(), os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flockContext(ctx, gate, how); err != nil {
		gate.Close()
		return nil, err
	}
	f, err := os.OpenFile(b.networkLock(), os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err == nil {
		err = flockContext(ctx, f, how)
		if err != nil {
			f.Close()
		}
	}
	if err != nil || how == unix.LOCK_SH {
		gate.Close() // a Build is through
	}
	if err != nil {
		return nil, err
	}
	if how == unix.LOCK_SH {
		return func() { f.Close() }, nil
	}
	return func() { f.Close(); gate.Close() }, nil
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
