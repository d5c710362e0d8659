package flock_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/flock"
)

func open(t *testing.T, p string) int {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, p), open(t, p)
	require.NoError(t, flock.Lock(context.Background(), a, unix.LOCK_EX, 0, nil))
	assert.True(t, flock.Held(p))

	// Held exclusively: a done context ends the wait, grace or not.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	busy := 0
	require.ErrorIs(t, flock.Lock(ctx, b, unix.LOCK_EX, time.Second, func() { busy++ }), context.DeadlineExceeded)
	assert.Positive(t, busy)

	// Released: taken.
	require.NoError(t, unix.Flock(a, unix.LOCK_UN))
	assert.False(t, flock.Held(p))
	require.NoError(t, flock.Lock(context.Background(), b, unix.LOCK_EX, 0, nil))
	require.NoError(t, unix.Flock(b, unix.LOCK_UN))

	// Held shared (a look): a done context waits it out within its grace.
	require.NoError(t, unix.Flock(a, unix.LOCK_SH))
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	got := make(chan error, 1)
	go func() { got <- flock.Lock(done, b, unix.LOCK_EX, time.Minute, nil) }()
	require.NoError(t, unix.Flock(a, unix.LOCK_UN)) // the look ends
	require.NoError(t, <-got)
	// Without grace it gives up at once.
	require.NoError(t, unix.Flock(b, unix.LOCK_UN))
	require.NoError(t, unix.Flock(a, unix.LOCK_SH))
	require.ErrorIs(t, flock.Lock(done, b, unix.LOCK_EX, 0, nil), context.Canceled)
	assert.False(t, flock.Held(filepath.Join(t.TempDir(), "none")))
}

func TestDir(t *testing.T) {
	d := t.TempDir()
	// Whether another open of the dir can take its lock.
	free := func() bool {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		defer unix.Close(fd)
		return unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) == nil
	}
	unlock, err := flock.Dir(d)
	require.NoError(t, err)
	assert.False(t, free())
	assert.False(t, flock.Held(d), "Held looks at regular files only")
	unlock()
	assert.True(t, free())
	_, err = flock.Dir(filepath.Join(d, "none"))
	require.Error(t, err)
}

// Gated: shared holders overlap; an exclusive taker waits for them and,
// once it waits, holds new shared takers back.
func TestGated(t *testing.T) {
	d := t.TempDir()
	gate, lock := filepath.Join(d, "gate"), filepath.Join(d, "lock")
	for _, p := range []string{gate, lock} {
		require.NoError(t, os.WriteFile(p, nil, 0o600))
	}
	ctx := context.Background()
	s1, err := flock.Gated(ctx, gate, lock, unix.LOCK_SH)
	require.NoError(t, err)
	s2, err := flock.Gated(ctx, gate, lock, unix.LOCK_SH)
	require.NoError(t, err, "shared holders overlap")
	exclusive := make(chan func(), 1)
	go func() {
		u, err := flock.Gated(ctx, gate, lock, unix.LOCK_EX)
		assert.NoError(t, err)
		exclusive <- u
	}()
	// Once the exclusive taker holds the gate, a new shared taker waits.
	for !flock.Held(gate) {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = flock.Gated(short, gate, lock, unix.LOCK_SH)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "held back at the gate")
	s1()
	s2()
	unlock := <-exclusive
	unlock()
	s3, err := flock.Gated(ctx, gate, lock, unix.LOCK_SH)
	require.NoError(t, err)
	s3()
}
