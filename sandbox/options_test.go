package sandbox_test

import (
	"regexp"
	"sync"
	"testing"

	"context"
	"github.com/stretchr/testify/require"

	"os"
	"path/filepath"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/internal/testhook"
)

// realOptionsAt sets every directory of opts under root and makes the
// node's resolv.conf a file of the test's.
func realOptionsAt(root string, opts sandbox.Options) (sandbox.Options, error) {
	opts.StateDir = filepath.Join(root, "state")
	opts.RunDir = filepath.Join(root, "run")
	opts.NetnsDir = filepath.Join(root, "netns")
	opts.HostResolvConf = filepath.Join(root, "resolv.conf")
	return opts, os.WriteFile(opts.HostResolvConf, []byte("nameserver 192.0.2.53\n"), 0o644)
}

// beforeStep adds a hook that runs before each step of the Builds made
// with o (sandboxtest's FailAt and CrashAt are made of it). Steps that one
// Build runs at once (network and create) call it in turn.
func beforeStep(o sandbox.Options, fn func(ctx context.Context, id string, s sandbox.Step) error) sandbox.Options {
	var t turns
	return concurrentBeforeStep(o, func(ctx context.Context, id string, s sandbox.Step) error {
		defer t.take(id)()
		return fn(ctx, id, s)
	})
}

// turns makes the calls of one sandbox's steps, which may run at once,
// take turns; other sandboxes' calls go on meanwhile.
type turns struct {
	mu  sync.Mutex
	per map[string]*sync.Mutex
}

// take waits for id's turn and returns its end.
func (t *turns) take(id string) (done func()) {
	t.mu.Lock()
	if t.per == nil {
		t.per = map[string]*sync.Mutex{}
	}
	l := t.per[id]
	if l == nil {
		l = new(sync.Mutex)
		t.per[id] = l
	}
	t.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// concurrentBeforeStep is beforeStep for hooks that must run at the same
// time as each other.
func concurrentBeforeStep(o sandbox.Options, fn func(ctx context.Context, id string, s sandbox.Step) error) sandbox.Options {
	testhook.SetBeforeStep(&o, func(ctx context.Context, id, step string) error { return fn(ctx, id, sandbox.Step(step)) })
	return o
}

// ofAnEarlierBoot makes a sandbox's journal say it was written in an
// earlier boot of the node, as after a reboot.
func ofAnEarlierBoot(t *testing.T, b *sandbox.Builder, id string) {
	t.Helper()
	p := filepath.Join(b.Options().StateDir, "journals", id)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	data = regexp.MustCompile(`"boot":"[^"]*"`).ReplaceAll(data, []byte(`"boot":"an-earlier-boot-of-the-nod"`))
	require.Contains(t, string(data), "an-earlier-boot")
	require.NoError(t, os.WriteFile(p, data, 0o600))
}
