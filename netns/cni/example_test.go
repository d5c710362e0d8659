package cni_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
)

// An embedder makes a Network for the node's CNI configuration and hands
// it to the sandbox Builder, which prepares, journals, attaches and later
// detaches each pod. libcni's cache goes to the Builder's StateDir/network:
// give each Builder its own StateDir and they never collect each other's
// pods. This needs root, the plugins and a configuration: it only
// compiles.
func ExampleNew() {
	network, err := cni.New(cni.Options{
		ConfDir:    "/etc/cni/net.d",                         // the default
		BinDirs:    []string{"/opt/cni/bin", "/usr/lib/cni"}, // the default
		AddTimeout: time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	b, err := sandbox.NewBuilder(sandbox.Options{StateDir: "/var/lib/podsmith", Network: network})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := pod.Load("pod-config.json")
	if err != nil {
		log.Fatal(err)
	}
	sb, err := b.Build(ctx, cfg)
	if errors.Is(err, cni.ErrCNI) {
		log.Fatalf("the pod network: %v", err) // a *cni.ConfigError, a *cni.Error...
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sb.ID, sb.IPs)
	if err := sb.CheckNetwork(ctx); err != nil { // CNI CHECK
		log.Print(err)
	}
	if err := sb.Destroy(ctx); err != nil { // DEL, then the rest
		log.Fatal(err)
	}
	// At start-up, after a crash: DEL what libcni's cache holds of
	// sandboxes that are gone.
	if err := b.CollectNetwork(ctx); err != nil {
		log.Print(err)
	}
}

// A tool that runs with or without a network allows an empty conf dir:
// Prepare then says sandbox.ErrNoNetwork, and the Builder gives the pod
// its loopback interface only.
func ExampleOptions_allowNoConfig() {
	network, err := cni.New(cni.Options{ConfDir: "/nonexistent/podsmith/net.d", AllowNoConfig: true})
	if err != nil {
		log.Fatal(err)
	}
	a := &sandbox.NetworkAttachment{SandboxID: "0123", Pod: pod.Metadata{Name: "web", Namespace: "default", UID: "0b9e"}}
	err = network.Prepare(context.Background(), a)
	fmt.Println(errors.Is(err, sandbox.ErrNoNetwork))
	// Output:
	// true
}
