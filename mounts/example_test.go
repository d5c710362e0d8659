package mounts_test

import (
	"fmt"

	"github.com/podsmith/podsmith/mounts"
)

func ExampleShmSize() {
	size, err := mounts.ShmSize(100<<20+1, 0) // 100 MiB and a byte
	fmt.Println(size, err)
	_, err = mounts.ShmSize(2<<30, 1<<30)
	fmt.Println(err)
	// Output:
	// 104861696 <nil>
	// mounts: shm size 2147483648: exceeds the cap of 1073741824 bytes
}

func ExampleReadOnlyBind() {
	m := mounts.ReadOnlyBind("/run/podsmith/sandboxes/0123/resolv.conf", "/etc/resolv.conf")
	fmt.Println(m.Destination, m.Type, m.Options)
	// Output:
	// /etc/resolv.conf bind [bind ro nosuid nodev noexec]
}

// Mounting needs root; this example only compiles.
func ExampleMountShm() {
	size, err := mounts.MountShm("/run/podsmith/sandboxes/0123/shm", mounts.ShmOptions{Size: 128 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mounts.Unmount("/run/podsmith/sandboxes/0123/shm")
	fmt.Println("mounted", size, "bytes")
}
