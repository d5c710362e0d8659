package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/sandbox"
)

// run --no-pause and join, with runc and crun: a container in the pod sees
// its hostname, sysctls and PID namespace; join exits with its command's
// status; the whole lifecycle leaves nothing.
func TestNoPauseAndJoin(t *testing.T) {
	for _, runtime := range []string{"runc", "crun"} {
		t.Run(runtime, func(t *testing.T) {
			testutil.BusyboxRootfs(t, t.TempDir()) // skips or fails without busybox-static
			e := newEnv(t, runtime)
			id := strings.TrimSpace(e.ok("run", "--no-pause", "../pods/no-pause.json"))
			v := e.inspect(id)
			assert.True(t, v.NoPause)
			assert.Equal(t, stateReady, v.State)
			assert.Zero(t, v.PausePID)
			for _, p := range []string{v.IPCNSPath, v.UTSNSPath} {
				assert.FileExists(t, p)
			}
			assert.Equal(t, "no-pause\n2048\n1\n", e.ok("join", id, "--", "sh", "-c", "hostname; cat /proc/sys/kernel/shmmni; echo $$"))
			r := e.podctl("join", id, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
			assert.Equal(t, result{Stdout: "out\n", Stderr: "err\n", Code: 7}, r, "join exits with the command's status, and says nothing of its own")
			assert.Equal(t, 2, e.podctl("join", id).Code)
			assert.Equal(t, 2, e.podctl("join", id, "--").Code)
			assert.Contains(t, e.podctl("join", "no-such-pod", "--", "true").Stderr, "no sandbox")
			// A rootfs the runtime cannot use: its error, a failure, and
			// nothing left of the container.
			r = e.podctl("join", "--rootfs", filepath.Join(t.TempDir(), "none"), id, "--", "true")
			assert.NotZero(t, r.Code)
			assert.NotEmpty(t, r.Stderr)
			ents, err := os.ReadDir(filepath.Join(e.root, "run", "joins"))
			require.NoError(t, err)
			assert.Empty(t, ents)

			// A pod sharing its PID namespace needs a pause.
			r = e.podctl("run", "--no-pause", "../pods/basic.json")
			assert.Equal(t, 1, r.Code)
			assert.Contains(t, r.Stderr, "namespace_options.pid")
			assert.Equal(t, 2, e.podctl("run", "--no-pause", "--no-start", "../pods/basic.json").Code)

			// With a pause: its PID namespace is shared.
			withPause := strings.TrimSpace(e.ok("run", "../pods/basic.json"))
			pv := e.inspect(withPause)
			e.lc.TrackProcess(pv.PausePID)
			e.lc.TrackProcess(pv.MonitorPID)
			assert.Equal(t, "basic\npause\n", e.ok("join", withPause, "--", "sh", "-c", "hostname; cat /proc/1/comm"))

			// podctl killed while its command runs: the container stays
			// in the pod until the pod goes.
			fifo := filepath.Join(v.BundleDir, "shm", "up")
			require.NoError(t, unix.Mkfifo(fifo, 0o666))
			join := e.command("join", id, "--", "sh", "-c", "echo up > /dev/shm/up; exec sleep 60")
			require.NoError(t, join.Start())
			b, err := os.ReadFile(fifo)
			require.NoError(t, err)
			require.Equal(t, "up\n", string(b))
			require.NoError(t, join.Process.Signal(syscall.SIGKILL))
			_ = join.Wait()
			ents, err = os.ReadDir(filepath.Join(e.root, "run", "joins"))
			require.NoError(t, err)
			require.Len(t, ents, 1, "the killed join's container")

			assert.Equal(t, 1, e.podctl("rm", id).Code, "a ready pod needs stop first")
			// The pod destroyed by another hand than podctl's (its
			// library): recover removes the container left in it.
			lib, err := sandbox.NewBuilder(sandbox.Options{StateDir: filepath.Join(e.root, "state"),
				RunDir: filepath.Join(e.root, "run"), NetnsDir: filepath.Join(e.root, "netns")})
			require.NoError(t, err)
			sb, err := lib.Find(id)
			require.NoError(t, err)
			require.NoError(t, sb.Destroy(context.Background()))
			e.ok("recover")
			ents, err = os.ReadDir(filepath.Join(e.root, "run", "joins"))
			require.NoError(t, err)
			assert.Empty(t, ents, "recover removed the killed join's container")
			e.ok("rm", "-f", withPause)
			reapOrphans(t, 10*time.Second)
			assert.Empty(t, e.lc.Leaked())
		})
	}
}

// A pod in a user namespace of its own (examples/pods/userns.json), with
// runc and crun: the pause runs mapped, a joined container shares the
// user namespace, and nothing is left.
func TestUserNamespaceRun(t *testing.T) {
	for _, runtime := range []string{"runc", "crun"} {
		t.Run(runtime, func(t *testing.T) {
			testutil.BusyboxRootfs(t, t.TempDir())
			e := newEnv(t, runtime)
			// The pod's root, an unprivileged user of the node, reaches its
			// bundle: the run dir's parents are searchable.
			for d := e.root; d != os.TempDir() && d != filepath.Dir(d); d = filepath.Dir(d) {
				require.NoError(t, os.Chmod(d, 0o711))
			}
			id := strings.TrimSpace(e.ok("run", "../pods/userns.json"))
			v := e.inspect(id)
			e.lc.TrackProcess(v.PausePID)
			e.lc.TrackProcess(v.MonitorPID)
			uidMap, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", v.PausePID))
			require.NoError(t, err)
			assert.Equal(t, []string{"0", "1073741824", "65536"}, strings.Fields(string(uidMap)))
			assert.Equal(t, "0 1073741824 65536\nuserns\n", e.ok("join", id, "--", "sh", "-c", "awk '{print $1, $2, $3}' /proc/self/uid_map; hostname"))
			e.ok("stop", id)
			e.ok("rm", id)
			reapOrphans(t, 10*time.Second)
			assert.Empty(t, e.lc.Leaked())
		})
	}
}
