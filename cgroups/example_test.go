package cgroups_test

import (
	"errors"
	"fmt"

	"github.com/podsmith/podsmith/cgroups"
)

func ExampleExpandSlice() {
	for _, slice := range []string{"kubepods-burstable-pod1234.slice", "-.slice", "kubepods--x.slice"} {
		p, err := cgroups.ExpandSlice(slice)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(p)
	}
	// Output:
	// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice
	// /
	// invalid systemd slice name "kubepods--x.slice": has an empty component (a leading or trailing '-', or "--"); a valid name looks like "a-b-c.slice"
}

func ExampleCgroupsPath() {
	const id = "4f1c6a0e"
	p, _ := cgroups.CgroupsPath(cgroups.Systemd, "kubepods-burstable.slice", "podsmith", id)
	fmt.Println(p)
	d, _ := cgroups.Dir(cgroups.Systemd, "kubepods-burstable.slice", "podsmith", id)
	fmt.Println(d)
	p, _ = cgroups.CgroupsPath(cgroups.Cgroupfs, "/kubepods/burstable", "podsmith", id)
	fmt.Println(p)
	p, _ = cgroups.CgroupsPath(cgroups.Cgroupfs, "", "podsmith", id) // the default parent
	fmt.Println(p)

	_, err := cgroups.CgroupsPath(cgroups.Cgroupfs, "kubepods.slice", "podsmith", id)
	var pe *cgroups.ParentError
	if errors.As(err, &pe) {
		fmt.Println(errors.Is(err, cgroups.ErrInvalid), pe.Manager)
		fmt.Println(err)
	}
	// Output:
	// kubepods-burstable.slice:podsmith:4f1c6a0e
	// /kubepods.slice/kubepods-burstable.slice/podsmith-4f1c6a0e.scope
	// /kubepods/burstable/podsmith-4f1c6a0e
	// /podsmith/podsmith-4f1c6a0e
	// true cgroupfs
	// cgroup parent "kubepods.slice" is a systemd slice but the cgroup manager is cgroupfs; use an absolute path like "/kubepods" or the systemd manager
}
