package cgroups_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/cgroups"
)

const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseManager(t *testing.T) {
	for _, s := range []string{"systemd", "cgroupfs"} {
		m, err := cgroups.ParseManager(s)
		require.NoError(t, err, s)
		assert.Equal(t, s, m.String())
	}
	assert.Equal(t, cgroups.Systemd, must(cgroups.ParseManager("systemd")))
	assert.Equal(t, cgroups.Cgroupfs, must(cgroups.ParseManager("cgroupfs")))

	for _, s := range []string{"", "Systemd", "SYSTEMD", " systemd", "cgroupfs\n", "cgroup", "none"} {
		m, err := cgroups.ParseManager(s)
		assert.Empty(t, m, "%q", s)
		var me *cgroups.ManagerError
		require.ErrorAs(t, err, &me, "%q", s)
		assert.Equal(t, s, me.Value)
		assert.ErrorIs(t, err, cgroups.ErrInvalid)
		assert.Contains(t, err.Error(), "manager")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDefaultParent(t *testing.T) {
	assert.Equal(t, "podsmith.slice", cgroups.DefaultParent(cgroups.Systemd))
	assert.Equal(t, "/podsmith", cgroups.DefaultParent(cgroups.Cgroupfs))
	assert.Equal(t, "", cgroups.DefaultParent("other"))
	for _, m := range []cgroups.Manager{cgroups.Systemd, cgroups.Cgroupfs} {
		assert.NoError(t, cgroups.ValidateParent(m, cgroups.DefaultParent(m)), m)
	}
}

func TestValidateParent(t *testing.T) {
	long := "/" + strings.Repeat("a", 4095)
	longSlice := strings.Repeat("a", 250) + ".slice" // 256 bytes
	tests := []struct {
		m      cgroups.Manager
		parent string
		ok     bool
		slice  bool // the refusal comes with a *SliceError
	}{
		// systemd: a slice, or a path whose base name is one.
		{cgroups.Systemd, "kubepods.slice", true, false},
		{cgroups.Systemd, "kubepods-burstable.slice", true, false},
		{cgroups.Systemd, "kubepods-burstable-pod1234_5678.slice", true, false},
		{cgroups.Systemd, "/kubepods.slice/kubepods-burstable.slice", true, false},
		{cgroups.Systemd, "kubepods.slice/", true, false},
		{cgroups.Systemd, "-.slice", true, false},
		{cgroups.Systemd, "/-.slice", true, false},
		{cgroups.Systemd, `a\x2db.slice`, true, false},
		{cgroups.Systemd, "a.b.slice", true, false},
		{cgroups.Systemd, "", false, false},
		{cgroups.Systemd, "/", false, false},
		{cgroups.Systemd, "/kubepods", false, false},
		{cgroups.Systemd, "kubepods", false, false},
		{cgroups.Systemd, "kubepods.slice/pod", false, false},
		{cgroups.Systemd, "kubepods.scope", false, false},
		{cgroups.Systemd, ".slice", false, true},
		{cgroups.Systemd, "a--b.slice", false, true},
		{cgroups.Systemd, "-a.slice", false, true},
		{cgroups.Systemd, "a-.slice", false, true},
		{cgroups.Systemd, "/x/--.slice", false, true},
		{cgroups.Systemd, "é.slice", false, true},
		{cgroups.Systemd, "a+b.slice", false, true},
		{cgroups.Systemd, longSlice, false, true},
		{cgroups.Systemd, "a:b.slice", false, false},
		{cgroups.Systemd, "kube pods.slice", false, false},
		{cgroups.Systemd, "kubepods.slice\n", false, false},
		{cgroups.Systemd, "a\x00.slice", false, false},
		{cgroups.Systemd, "/" + strings.Repeat("a", 4096) + "/b.slice", false, false},
		// cgroupfs: a clean absolute path that is not a slice.
		{cgroups.Cgroupfs, "/", true, false},
		{cgroups.Cgroupfs, "/kubepods", true, false},
		{cgroups.Cgroupfs, "/kubepods/burstable/pod1234", true, false},
		{cgroups.Cgroupfs, "/kubepods.slice/pod", true, false},
		{cgroups.Cgroupfs, "/a..b/...", true, false},
		{cgroups.Cgroupfs, "/é", true, false},
		{cgroups.Cgroupfs, long, true, false},
		{cgroups.Cgroupfs, long + "a", false, false},
		{cgroups.Cgroupfs, "", false, false},
		{cgroups.Cgroupfs, "kubepods.slice", false, false},
		{cgroups.Cgroupfs, "/kubepods.slice", false, false},
		{cgroups.Cgroupfs, "/kubepods.slice/kubepods-burstable.slice", false, false},
		{cgroups.Cgroupfs, "-.slice", false, false},
		{cgroups.Cgroupfs, "kubepods", false, false},
		{cgroups.Cgroupfs, "./kubepods", false, false},
		{cgroups.Cgroupfs, "/a/../b", false, false},
		{cgroups.Cgroupfs, "/..", false, false},
		{cgroups.Cgroupfs, "/a/..", false, false},
		{cgroups.Cgroupfs, "/a/", false, false},
		{cgroups.Cgroupfs, "/a//b", false, false},
		{cgroups.Cgroupfs, "/a/./b", false, false},
		{cgroups.Cgroupfs, "//", false, false},
		{cgroups.Cgroupfs, "/a b", false, false},
		{cgroups.Cgroupfs, "/a\tb", false, false},
		{cgroups.Cgroupfs, "/a\nb", false, false},
		{cgroups.Cgroupfs, "/a\x00b", false, false},
		{cgroups.Cgroupfs, "/a\u00a0b", false, false},
	}
	for _, tt := range tests {
		err := cgroups.ValidateParent(tt.m, tt.parent)
		if tt.ok {
			assert.NoError(t, err, "%s %q", tt.m, tt.parent)
			continue
		}
		var pe *cgroups.ParentError
		if !assert.ErrorAs(t, err, &pe, "%s %q", tt.m, tt.parent) {
			continue
		}
		assert.ErrorIs(t, err, cgroups.ErrInvalid)
		assert.Equal(t, tt.m, pe.Manager)
		assert.Equal(t, tt.parent, pe.Parent)
		assert.NotEmpty(t, pe.Reason)
		assert.Contains(t, err.Error(), string(tt.m), "the message names the manager")
		assert.Contains(t, err.Error(), quote(tt.parent), "the message names the parent")
		var se *cgroups.SliceError
		assert.Equal(t, tt.slice, errors.As(err, &se), "%s %q: SliceError underneath", tt.m, tt.parent)
	}
}

// quote is how the messages quote values (%q).
func quote(s string) string { return strconv.Quote(s) }

func TestValidateParentUnknownManager(t *testing.T) {
	for _, m := range []cgroups.Manager{"", "Systemd", "runc"} {
		err := cgroups.ValidateParent(m, "/kubepods")
		var me *cgroups.ManagerError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, string(m), me.Value)
		assert.ErrorIs(t, err, cgroups.ErrInvalid)
	}
}

func TestValidateParentMessages(t *testing.T) {
	err := cgroups.ValidateParent(cgroups.Systemd, "/kubepods")
	require.Error(t, err)
	assert.Equal(t, `cgroup parent "/kubepods" is not a systemd slice (the systemd cgroup manager needs a parent like "kubepods.slice"); use a .slice parent or the cgroupfs manager`, err.Error())
	err = cgroups.ValidateParent(cgroups.Cgroupfs, "kubepods.slice")
	require.Error(t, err)
	assert.Equal(t, `cgroup parent "kubepods.slice" is a systemd slice but the cgroup manager is cgroupfs; use an absolute path like "/kubepods" or the systemd manager`, err.Error())
}

func TestExpandSlice(t *testing.T) {
	ok := map[string]string{
		"-.slice":                           "/",
		"a.slice":                           "/a.slice",
		"a-b.slice":                         "/a.slice/a-b.slice",
		"a-b-c.slice":                       "/a.slice/a-b.slice/a-b-c.slice",
		"kubepods-burstable.slice":          "/kubepods.slice/kubepods-burstable.slice",
		"kubepods-besteffort-pod1.slice":    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice",
		"a_b.c:d.slice":                     "/a_b.c:d.slice",
		`a\x2db.slice`:                      `/a\x2db.slice`,
		"..slice":                           "/..slice",
		"a-..slice":                         "/a.slice/a-..slice",
		"a.slice.slice":                     "/a.slice.slice",
		"ABC-123.slice":                     "/ABC.slice/ABC-123.slice",
		strings.Repeat("a", 249) + ".slice": "/" + strings.Repeat("a", 249) + ".slice",
	}
	for in, want := range ok {
		got, err := cgroups.ExpandSlice(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}

	bad := []string{
		"",
		".slice",
		"a",
		"a.scope",
		"a.slice/",
		"a.Slice",
		"/a.slice",
		"a/b.slice",
		"a--b.slice",
		"-a.slice",
		"a-.slice",
		"--.slice",
		"-.slice-a.slice",
		"a b.slice",
		"a\n.slice",
		"a\x00.slice",
		"é.slice",
		"a\xff.slice",
		"a+b.slice",
		"a@b.slice",
		"a%b.slice",
		strings.Repeat("a", 250) + ".slice",
	}
	for _, in := range bad {
		got, err := cgroups.ExpandSlice(in)
		assert.Empty(t, got, "%q", in)
		var se *cgroups.SliceError
		if assert.ErrorAs(t, err, &se, "%q", in) {
			assert.Equal(t, in, se.Slice)
			assert.NotEmpty(t, se.Reason)
			assert.ErrorIs(t, err, cgroups.ErrInvalid)
			assert.Contains(t, err.Error(), quote(in))
		}
	}
}

func TestCgroupsPathAndDir(t *testing.T) {
	tests := []struct {
		m                  cgroups.Manager
		parent, prefix, id string
		path, dir          string
	}{
		{cgroups.Systemd, "kubepods-burstable.slice", "podsmith", id,
			"kubepods-burstable.slice:podsmith:" + id,
			"/kubepods.slice/kubepods-burstable.slice/podsmith-" + id + ".scope"},
		{cgroups.Systemd, "/kubepods.slice/kubepods-burstable.slice", "crio", "abc",
			"kubepods-burstable.slice:crio:abc",
			"/kubepods.slice/kubepods-burstable.slice/crio-abc.scope"},
		{cgroups.Systemd, "-.slice", "podsmith", "abc", "-.slice:podsmith:abc", "/podsmith-abc.scope"},
		{cgroups.Systemd, "", "podsmith", "abc", "podsmith.slice:podsmith:abc", "/podsmith.slice/podsmith-abc.scope"},
		{cgroups.Systemd, "a.slice", "a-b_c.d", "x.y-z", "a.slice:a-b_c.d:x.y-z", "/a.slice/a-b_c.d-x.y-z.scope"},
		{cgroups.Cgroupfs, "/kubepods", "podsmith", id, "/kubepods/podsmith-" + id, "/kubepods/podsmith-" + id},
		{cgroups.Cgroupfs, "/kubepods/burstable", "crio", "abc", "/kubepods/burstable/crio-abc", "/kubepods/burstable/crio-abc"},
		{cgroups.Cgroupfs, "/", "podsmith", "abc", "/podsmith-abc", "/podsmith-abc"},
		{cgroups.Cgroupfs, "", "podsmith", "abc", "/podsmith/podsmith-abc", "/podsmith/podsmith-abc"},
		{cgroups.Cgroupfs, "/a", "p", "x.slice", "/a/p-x.slice", "/a/p-x.slice"},
		{cgroups.Cgroupfs, "/a", strings.Repeat("p", 127), strings.Repeat("i", 127),
			"/a/" + strings.Repeat("p", 127) + "-" + strings.Repeat("i", 127),
			"/a/" + strings.Repeat("p", 127) + "-" + strings.Repeat("i", 127)},
	}
	for _, tt := range tests {
		got, err := cgroups.CgroupsPath(tt.m, tt.parent, tt.prefix, tt.id)
		require.NoError(t, err, "%+v", tt)
		assert.Equal(t, tt.path, got)
		got, err = cgroups.Dir(tt.m, tt.parent, tt.prefix, tt.id)
		require.NoError(t, err, "%+v", tt)
		assert.Equal(t, tt.dir, got)
	}
}

func TestCgroupsPathErrors(t *testing.T) {
	type kind int
	const (
		manager kind = iota
		parent
		prefix
		ident
	)
	tests := []struct {
		m                  cgroups.Manager
		parent, prefix, id string
		want               kind
	}{
		{"", "/a", "p", "i", manager},
		{"runc", "/a", "p", "i", manager},
		{cgroups.Systemd, "/kubepods", "p", "i", parent},
		{cgroups.Systemd, "a--b.slice", "p", "i", parent},
		{cgroups.Systemd, "a:b.slice", "p", "i", parent},
		{cgroups.Cgroupfs, "kubepods.slice", "p", "i", parent},
		{cgroups.Cgroupfs, "/a/../b", "p", "i", parent},
		{cgroups.Cgroupfs, "a", "p", "i", parent},
		{cgroups.Cgroupfs, "/a", "", "i", prefix},
		{cgroups.Cgroupfs, "/a", ".", "i", prefix},
		{cgroups.Cgroupfs, "/a", "..", "i", prefix},
		{cgroups.Cgroupfs, "/a", "a/b", "i", prefix},
		{cgroups.Cgroupfs, "/a", "a:b", "i", prefix},
		{cgroups.Cgroupfs, "/a", "a b", "i", prefix},
		{cgroups.Cgroupfs, "/a", "é", "i", prefix},
		{cgroups.Cgroupfs, "/a", strings.Repeat("p", 129), "i", prefix},
		{cgroups.Systemd, "a.slice", "a:b", "i", prefix},
		{cgroups.Cgroupfs, "/a", "p", "", ident},
		{cgroups.Cgroupfs, "/a", "p", ".", ident},
		{cgroups.Cgroupfs, "/a", "p", "..", ident},
		{cgroups.Cgroupfs, "/a", "p", "../x", ident},
		{cgroups.Cgroupfs, "/a", "p", "a\nb", ident},
		{cgroups.Cgroupfs, "/a", "p", "a\x00", ident},
		{cgroups.Cgroupfs, "/a", "p", strings.Repeat("i", 129), ident},
		{cgroups.Systemd, "a.slice", "p", "a:b", ident},
		{cgroups.Systemd, "a.slice", "p", "x.slice", ident},
		// prefix-id longer than a file name or unit name (255 bytes).
		{cgroups.Cgroupfs, "/a", strings.Repeat("p", 128), strings.Repeat("i", 127), ident},
		{cgroups.Systemd, "a.slice", strings.Repeat("p", 128), strings.Repeat("i", 121), ident},
	}
	for _, tt := range tests {
		for name, f := range map[string]func(cgroups.Manager, string, string, string) (string, error){
			"CgroupsPath": cgroups.CgroupsPath, "Dir": cgroups.Dir,
		} {
			got, err := f(tt.m, tt.parent, tt.prefix, tt.id)
			assert.Empty(t, got, "%s %+v", name, tt)
			require.ErrorIs(t, err, cgroups.ErrInvalid, "%s %+v", name, tt)
			assert.NotErrorIs(t, err, fs.ErrInvalid)
			var (
				me *cgroups.ManagerError
				pe *cgroups.ParentError
				ne *cgroups.NameError
			)
			switch tt.want {
			case manager:
				assert.ErrorAs(t, err, &me, "%s %+v", name, tt)
			case parent:
				assert.ErrorAs(t, err, &pe, "%s %+v", name, tt)
			case prefix, ident:
				if assert.ErrorAs(t, err, &ne, "%s %+v", name, tt) {
					field, value := "prefix", tt.prefix
					if tt.want == ident {
						field, value = "id", tt.id
					}
					assert.Equal(t, field, ne.Field, "%s %+v", name, tt)
					assert.Equal(t, value, ne.Value)
					assert.NotEmpty(t, ne.Reason)
					assert.Contains(t, err.Error(), field)
				}
			}
		}
	}

	// The systemd limit counts the ".scope" suffix: 128+1+120+6 = 255 fits.
	_, err := cgroups.CgroupsPath(cgroups.Systemd, "a.slice", strings.Repeat("p", 128), strings.Repeat("i", 120))
	assert.NoError(t, err)
	_, err = cgroups.CgroupsPath(cgroups.Cgroupfs, "/a", strings.Repeat("p", 128), strings.Repeat("i", 126))
	assert.NoError(t, err)
}

func TestErrorsAreInvalid(t *testing.T) {
	for _, err := range []error{
		&cgroups.ManagerError{Value: "x"},
		&cgroups.ParentError{Manager: cgroups.Cgroupfs, Parent: "x", Reason: "is bad"},
		&cgroups.SliceError{Slice: "x", Reason: "is bad"},
		&cgroups.NameError{Field: "id", Value: "x", Reason: "is bad"},
	} {
		assert.ErrorIs(t, err, cgroups.ErrInvalid, "%T", err)
		assert.NotErrorIs(t, err, errors.New("cgroups: invalid"), "%T", err)
		assert.ErrorIs(t, fmt.Errorf("build: %w", err), cgroups.ErrInvalid, "wrapped %T", err)
		assert.NotEmpty(t, err.Error())
	}
	assert.Nil(t, (&cgroups.ParentError{}).Unwrap())
}
