package spec_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-tools/validate"
	"github.com/stretchr/testify/require"
	"github.com/xeipuuv/gojsonschema"

	"github.com/podsmith/podsmith/spec"
)

// schemaDir finds the JSON schema shipped with the runtime-spec module
// podsmith builds against (runtime-tools' own schema check fetches it from
// GitHub, which a test must not do).
func schemaDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/opencontainers/runtime-spec").Output()
	require.NoError(t, err)
	dir := filepath.Join(strings.TrimSpace(string(out)), "schema")
	require.FileExists(t, filepath.Join(dir, "config-schema.json"))
	return dir
}

// TestBundleValidates runs runtime-tools' validator on saved bundles: the
// JSON schema (from the local module), and every check that does not need
// a running container, with host-specific checks on.
func TestBundleValidates(t *testing.T) {
	schema := gojsonschema.NewReferenceLoader("file://" + filepath.Join(schemaDir(t), "config-schema.json"))
	bins := t.TempDir()
	bin := filepath.Join(bins, "pause")
	require.NoError(t, os.WriteFile(bin, staticELF(t), 0o755))
	rootfsDir := filepath.Join(t.TempDir(), "rootfs")
	rootfs, err := spec.PreparePauseRootfs(rootfsDir, spec.PauseOptions{Binary: bin})
	require.NoError(t, err)
	t.Cleanup(func() { makeWritable(rootfsDir) })

	caps, err := spec.HostCapabilities()
	require.NoError(t, err)
	for name, extra := range map[string][]spec.Opt{
		"pod":          {spec.WithSeccomp(spec.PauseProfile())},
		"default":      {spec.WithSeccomp(spec.RuntimeDefaultProfile())},
		"host-network": {spec.WithHostNetwork(), spec.WithHostPID(), spec.WithHostIPC()},
		"privileged":   {spec.WithPrivileged(caps)},
	} {
		t.Run(name, func(t *testing.T) {
			bundle := t.TempDir()
			s, err := spec.New(append([]spec.Opt{rootfs.Opt(), spec.WithCgroupsPath("/podsmith/podsmith-x"),
				spec.WithAnnotations(map[string]string{spec.AnnotationSandboxID: "x"})}, extra...)...)
			require.NoError(t, err)
			require.NoError(t, spec.Save(bundle, s, spec.SaveOptions{}))
			// At run time <bundle>/rootfs is a read-only bind of the shared
			// rootfs; the validator only needs the directory.
			require.NoError(t, os.Mkdir(filepath.Join(bundle, spec.BundleRootfs), 0o755))

			b, err := os.ReadFile(filepath.Join(bundle, spec.ConfigFile))
			require.NoError(t, err)
			var doc any
			require.NoError(t, json.Unmarshal(b, &doc))
			res, err := gojsonschema.Validate(schema, gojsonschema.NewGoLoader(doc))
			require.NoError(t, err)
			require.True(t, res.Valid(), "schema: %v", res.Errors())

			v, err := validate.NewValidatorFromPath(bundle, true, "linux")
			require.NoError(t, err)
			for check, fn := range map[string]func() error{
				"platform": v.CheckPlatform, "root": v.CheckRoot, "mandatory": v.CheckMandatoryFields,
				"mounts": v.CheckMounts, "process": v.CheckProcess,
				"linux": v.CheckLinux, "annotations": v.CheckAnnotations, "hooks": v.CheckHooks,
			} {
				err := fn()
				// The checks return a *multierror.Error that may hold no
				// error at all.
				if me, ok := err.(interface{ ErrorOrNil() error }); ok {
					err = me.ErrorOrNil()
				}
				require.NoError(t, err, check)
			}

			// CheckSemVer accepts only the runtime-spec version runtime-tools
			// was built with (1.2.1), which crun 1.8.1 refuses; podsmith
			// writes 1.0.2 unless told otherwise. The same spec labelled
			// 1.2.1 passes it.
			require.NoError(t, spec.WithOCIVersion(specs.Version)(s))
			v, err = validate.NewValidator(s, bundle, true, "linux")
			require.NoError(t, err)
			err = v.CheckSemVer()
			if me, ok := err.(interface{ ErrorOrNil() error }); ok {
				err = me.ErrorOrNil()
			}
			require.NoError(t, err)
		})
	}
}
