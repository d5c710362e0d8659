package sandboxtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// An orchestrator's unit test drives a Builder on a fake host, as a normal
// user, and checks how its own code handles a failure at a named step.
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
	cfg := &sandbox.Config{Metadata: sandbox.Metadata{Name: "web", Namespace: "default", UID: "0b9e"}}

	host.FailAt(sandbox.StepNetwork, errors.New("CNI plugin crashed"))
	_, err = b.Build(ctx, cfg)
	var se *sandbox.StepError
	if errors.As(err, &se) {
		fmt.Println("failed at", se.Step, "rolled back:", se.RollbackErr == nil)
	}

	host.FailAt(sandbox.StepNetwork, nil)
	sb, err := b.Build(ctx, cfg)
	if err != nil {
		panic(err)
	}
	fmt.Println(sb.Name, sb.IPs)
	if err := sb.Destroy(ctx); err != nil {
		panic(err)
	}
	attached, _ := host.Attachments()
	fmt.Println("attachments left:", len(attached))
	// Output:
	// failed at network rolled back: true
	// k8s_web_default_0b9e_0 [198.18.0.1]
	// attachments left: 0
}
