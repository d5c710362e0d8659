package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
)

// Plan checks a pod config and computes everything, as a normal user, with
// no side effect (NewBuilder writes nothing either): every problem comes
// back at once, with its field, sorted by field.
func ExampleBuilder_Plan() {
	b, err := sandbox.NewBuilder(sandbox.Options{})
	if err != nil {
		log.Fatal(err)
	}
	_, err = b.Plan(&pod.Config{
		Metadata:  pod.Metadata{Name: "web", Namespace: "default"},
		DNSConfig: &pod.DNSConfig{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}},
		Linux:     &pod.LinuxConfig{Sysctls: map[string]string{"kernel.panic": "1"}},
	})
	var ce *sandbox.ConfigError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Println(p.Field)
		}
	}
	// Output:
	// dns_config.servers[0]
	// linux.sysctls["kernel.panic"]
	// metadata.uid
}

// Build makes the sandbox; give its BundleDir to runc or crun. Destroy
// undoes it.
func ExampleBuilder_Build() {
	b, err := sandbox.NewBuilder(sandbox.Options{})
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := pod.Load("pod-config.json") // crictl's format
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sb, err := b.Build(ctx, cfg)
	var nr *sandbox.NameReservedError
	switch {
	case errors.As(err, &nr):
		log.Fatalf("already running as %s", nr.ID)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(sb.ID, sb.BundleDir, sb.NetnsPath, sb.IPs)
	if err := sb.Destroy(ctx); err != nil {
		log.Fatal(err)
	}
}
