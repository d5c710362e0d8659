package netns_test

import (
	"fmt"
	"log"
	"net"

	"github.com/podsmith/podsmith/netns"
)

// New makes a namespace with lo up and pins it; Do runs code inside it;
// Remove unpins it. Creating a namespace needs root: this example only
// compiles.
func ExampleNew() {
	ns, err := netns.New("/run/netns", "podsmith-example")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Remove() // idempotent: a second Remove is fine too

	// Inside, a new namespace has its loopback interface only, up.
	err = ns.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			fmt.Println(i.Name, i.Flags&net.FlagUp != 0)
		}
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	// The pin path is what the OCI spec and CNI plugins are given.
	fmt.Println(ns.Path())
}

// A namespace's inode is its identity: two pins, or a pin and a process's
// /proc/<pid>/ns/net, are the same namespace when their inodes match.
func ExampleNetNS_Inode() {
	ns, err := netns.Open("/run/netns/podsmith-example")
	if err != nil {
		log.Fatal(err) // ErrNotNetNS: a stale pin, after a reboot
	}
	ino, err := ns.Inode()
	if err != nil {
		log.Fatal(err)
	}
	pause, err := netns.Open("/proc/1234/ns/net") // the pause process's
	if err != nil {
		log.Fatal(err)
	}
	pino, err := pause.Inode()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the pause is in the pod's namespace:", ino == pino)
}

// An orphan sweep after a reboot: every pin in the directory is stale, and
// Remove takes each away (a pin that is already gone is success).
func ExampleList() {
	pins, err := netns.List("/run/netns")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range pins {
		if p.Live {
			continue
		}
		if err := netns.Remove(p.Path); err != nil {
			log.Print(err)
		}
	}
}

// Pin names are file names, checked before anything touches the host.
func ExampleValidateName() {
	for _, name := range []string{"podsmith-0123", "a/b", "..", ""} {
		fmt.Printf("%q: %v\n", name, netns.ValidateName(name))
	}
	// Output:
	// "podsmith-0123": <nil>
	// "a/b": netns: invalid name "a/b": contains "/"
	// "..": netns: invalid name "..": not a file name
	// "": netns: invalid name "": empty
}
