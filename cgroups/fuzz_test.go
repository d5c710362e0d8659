package cgroups_test

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/podsmith/podsmith/cgroups"
)

func FuzzExpandSlice(f *testing.F) {
	for _, s := range []string{
		"-.slice", "a.slice", "a-b-c.slice", "kubepods-burstable-pod1.slice", ".slice",
		"a--b.slice", "-a.slice", "a-.slice", "a/b.slice", "..slice", "a-..slice", `a\x2d.slice`,
		"a:b.slice", "", "a", "é.slice", "-", "--.slice", "-.slice.slice",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, slice string) {
		p, err := cgroups.ExpandSlice(slice)
		if err != nil {
			var se *cgroups.SliceError
			if !errors.As(err, &se) || se.Slice != slice || se.Reason == "" || !errors.Is(err, cgroups.ErrInvalid) {
				t.Fatalf("ExpandSlice(%q): error %#v is not a complete *SliceError", slice, err)
			}
			if p != "" {
				t.Fatalf("ExpandSlice(%q) = %q with an error", slice, p)
			}
			return
		}
		if slice == "-.slice" {
			if p != "/" {
				t.Fatalf("ExpandSlice(%q) = %q, want /", slice, p)
			}
			return
		}
		if path.Clean(p) != p || !path.IsAbs(p) || path.Base(p) != slice {
			t.Fatalf("ExpandSlice(%q) = %q: not a clean absolute path ending in the slice", slice, p)
		}
		if !strings.HasSuffix(slice, ".slice") || len(slice) > 255 {
			t.Fatalf("ExpandSlice accepted %q", slice)
		}
	})
}

func FuzzCgroupsPath(f *testing.F) {
	for _, s := range []struct {
		m                  uint8
		parent, prefix, id string
	}{
		{0, "kubepods-burstable.slice", "podsmith", id},
		{0, "/kubepods.slice/kubepods-burstable.slice", "crio", "abc"},
		{0, "-.slice", "p", "i"},
		{0, "", "p", "i"},
		{0, "a:b.slice", "p", "i"},
		{0, "/kubepods", "p", "i"},
		{0, "../../a.slice", "..", "x.slice"},
		{1, "/kubepods", "podsmith", id},
		{1, "/", "p", "i"},
		{1, "", "p", "i"},
		{1, "/a/../b", "p", "i"},
		{1, "/a/", "p", "i"},
		{1, "kubepods.slice", "p", "i"},
		{1, "/a", "..", "."},
		{2, "/a", "p", "i"},
	} {
		f.Add(s.m, s.parent, s.prefix, s.id)
	}
	managers := []cgroups.Manager{cgroups.Systemd, cgroups.Cgroupfs, "", "other"}
	f.Fuzz(func(t *testing.T, sel uint8, parent, prefix, id string) {
		m := managers[int(sel)%len(managers)]
		if err := cgroups.ValidateParent(m, parent); err != nil {
			if !errors.Is(err, cgroups.ErrInvalid) {
				t.Fatalf("ValidateParent(%q, %q): %v does not match ErrInvalid", m, parent, err)
			}
			if parent != "" {
				// CgroupsPath refuses the same parents (the default
				// replaces only an empty one).
				if _, err := cgroups.CgroupsPath(m, parent, prefix, id); err == nil {
					t.Fatalf("CgroupsPath(%q, %q) accepted a parent ValidateParent refused", m, parent)
				}
			}
			if m == cgroups.Systemd || m == cgroups.Cgroupfs {
				var pe *cgroups.ParentError
				if !errors.As(err, &pe) || pe.Manager != m || pe.Parent != parent || pe.Reason == "" {
					t.Fatalf("ValidateParent(%q, %q): %#v is not a complete *ParentError", m, parent, err)
				}
			}
		}
		cp, err := cgroups.CgroupsPath(m, parent, prefix, id)
		dir, dirErr := cgroups.Dir(m, parent, prefix, id)
		if (err == nil) != (dirErr == nil) {
			t.Fatalf("CgroupsPath and Dir disagree: %v, %v", err, dirErr)
		}
		if err != nil {
			if !errors.Is(err, cgroups.ErrInvalid) || cp != "" || dir != "" {
				t.Fatalf("CgroupsPath(%q, %q, %q, %q) = %q, %v", m, parent, prefix, id, cp, err)
			}
			return
		}
		if parent == "" {
			parent = cgroups.DefaultParent(m)
		}
		if err := cgroups.ValidateParent(m, parent); err != nil {
			t.Fatalf("CgroupsPath accepted parent %q that ValidateParent refuses: %v", parent, err)
		}
		for _, s := range []string{cp, dir} {
			for _, elem := range strings.Split(s, "/") {
				if elem == ".." || elem == "." {
					t.Fatalf("%q has a %q element", s, elem)
				}
			}
		}
		if path.Clean(dir) != dir || !path.IsAbs(dir) {
			t.Fatalf("Dir = %q: not clean and absolute", dir)
		}
		switch m {
		case cgroups.Cgroupfs:
			if cp != dir || cp != path.Join(parent, prefix+"-"+id) {
				t.Fatalf("cgroupfs: CgroupsPath = %q, Dir = %q", cp, dir)
			}
		case cgroups.Systemd:
			slice := path.Base(parent)
			if want := slice + ":" + prefix + ":" + id; cp != want || strings.Count(cp, ":") != 2 {
				t.Fatalf("systemd: CgroupsPath = %q, want %q with two ':'", cp, want)
			}
			exp, err := cgroups.ExpandSlice(slice)
			if err != nil || dir != path.Join(exp, prefix+"-"+id+".scope") || len(path.Base(dir)) > 255 {
				t.Fatalf("systemd: Dir = %q, slice %q expands to %q, %v", dir, slice, exp, err)
			}
		default:
			t.Fatalf("manager %q accepted", m)
		}
	})
}
