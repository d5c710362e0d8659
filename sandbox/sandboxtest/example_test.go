package sandboxtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// An orchestrator's unit test drives a Builder on a fake host, as a normal
// user, and checks how its own code handles failures: a step that fails,
// an undo that fails, a crash.
func Example() {
	dir, err := os.MkdirTemp("", "sandboxtest-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	host, err := sandboxtest.NewHost(filepath.Join(dir, "host"))
	if err != nil {
		panic(err)
	}
	opts := sandbox.Options{
		StateDir: filepath.Join(dir, "state"),
		RunDir:   filepath.Join(dir, "run"),
		NetnsDir: filepath.Join(dir, "netns"),
	}
	if err := host.Apply(&opts); err != nil {
		panic(err)
	}
	b, err := sandbox.NewBuilder(opts)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	cfg := &pod.Config{Metadata: pod.Metadata{Name: "web", Namespace: "default", UID: "0b9e"}}

	// The network fails after attaching; the rollback detaches.
	host.FailAfter("attach", errors.New("CNI plugin crashed"))
	_, err = b.Build(ctx, cfg)
	var se *sandbox.StepError
	if errors.As(err, &se) {
		fmt.Println("failed at", se.Step, "rolled back:", se.RollbackErr == nil)
	}
	host.FailAfter("attach", nil)

	// An unmount that fails: Destroy says what stays, and a retry ends it.
	sb, err := b.Build(ctx, cfg)
	if err != nil {
		panic(err)
	}
	fmt.Println(sb.Name, sb.IPs)
	host.Fail("unmount", errors.New("busy"))
	var ue *sandbox.UndoError
	if err := sb.Destroy(ctx); errors.As(err, &ue) {
		left, _ := host.Left()
		fmt.Println("undo failed:", ue.Op, "left:", len(left), "mounts")
	}
	host.Fail("unmount", nil)
	if err := sb.Destroy(ctx); err != nil {
		panic(err)
	}

	// A crash while attaching, then Recover, as at a node's start.
	host.CrashAt(sandbox.StepNetwork)
	if _, err := b.Build(ctx, cfg); err != nil {
		rep, _ := b.Recover(ctx)
		fmt.Println("recovered:", len(rep.Destroyed))
	}
	left, _ := host.Left()
	fmt.Println("left:", len(left))
	// Output:
	// failed at network rolled back: true
	// k8s_web_default_0b9e_0 [198.18.0.1]
	// undo failed: unmount left: 2 mounts
	// recovered: 1
	// left: 0
}
