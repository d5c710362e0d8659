package spec_test

import (
	"errors"
	"fmt"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/spec"
)

func ExampleNew() {
	s, err := spec.New(
		spec.WithNamespace(specs.NetworkNamespace, "/run/netns/podsmith-0123"),
		spec.WithHostname("web-0"),
		spec.WithCgroupsPath("/podsmith/podsmith-0123"),
		spec.WithSysctls(map[string]string{"net/ipv4/ping_group_range": "0 2147483647"}),
		spec.WithSeccomp(spec.PauseProfile()),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Version, s.Hostname, s.Root.Path, s.Root.Readonly, s.Process.User.UID, *s.Process.OOMScoreAdj)
	fmt.Println(s.Linux.Sysctl)
	// Output:
	// 1.0.2 web-0 rootfs true 65535 -998
	// map[net.ipv4.ping_group_range:0 2147483647]
}

func ExampleNormalizeSysctls() {
	_, err := spec.NormalizeSysctls(map[string]string{
		"kernel.panic":       "1",
		"net.core.somaxconn": "1024",
	}, true, false)
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var se *spec.SysctlError
		if errors.As(e, &se) {
			fmt.Printf("%s: %s\n", se.Name, se.Reason)
		}
	}
	// Output:
	// kernel.panic: is not a namespaced sysctl: a pod may set kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.* only
	// net.core.somaxconn: is a network namespace sysctl, and the pod uses the host's network
}

func ExampleCompose() {
	hostNetwork := spec.Compose(spec.WithHostNetwork(), spec.WithHostPID())
	s, _ := spec.New(hostNetwork)
	for _, ns := range s.Linux.Namespaces {
		fmt.Println(ns.Type)
	}
	// Unordered output:
	// ipc
	// mount
}
