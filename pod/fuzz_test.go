package pod_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v2"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/pod"
)

func FuzzDecodeConfig(f *testing.F) {
	for _, name := range []string{"pod-config.json", "pod-config.yaml", "pod-config-names.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{}`, `{"metadata":{"name":"a","namespace":"b","uid":"c","attempt":1}}`,
		`{"labels":{},"annotations":{"a":""},"port_mappings":[],"dns_config":{}}`,
		`{"linux":{"security_context":{"namespace_options":{"network":"NODE","pid":1,"ipc":null}}}}`,
		`{"port_mappings":[{"protocol":"udp","container_port":53},{"protocol":7}]}`,
		`{"linux":{"security_context":{"run_as_user":{"value":-1},"supplemental_groups":[1,2]}}}`,
		`{"linux":{"resources":{"hugepage_limits":[{"page_size":"2MB","limit":1}],"unified":{"a":"b"}}}}`,
		`{"metadata":{}} {}`, `[]`, `null`, "", "metadata:\n  name: a\n", "a: [", "---\n...\n",
		"labels:\n  a: yes\n", "port_mappings:\n- {protocol: SCTP}\n", "{\"a\":1}]", "\xef\xbb\xbf{}",
		`{"metadata":{"name":"a"},"metadata":{"uid":"b"}}`, `{"hostname":"\u00e9\ud800"}`,
		"x: &a [*a]\n", "a: 1e400\n", `{"metadata":{"attempt":1e2}}`,
		// Deep, wide, aliased, several documents, echoed values.
		`{"labels":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "}",
		strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40),
		`{"labels":{"a":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + "}}",
		"labels: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
		"labels: " + strings.Repeat("{a: ", 40) + "1" + strings.Repeat("}", 40),
		"labels:\n" + strings.Repeat("- ", 40) + "x\n",
		"a:\n b:\n  c:\n   d:\n    e:\n     f:\n      g: [[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
		`{"linux":{"security_context":{"supplemental_groups":[` + strings.Repeat("0,", 2000) + "0]}}}",
		"a: &a [x,x,x,x]\nb: &b [*a,*a,*a,*a]\nc: [*b,*b,*b,*b]\n", "labels: {a: Tom & Jerry, b: '*x'}\n",
		"hostname: a\n...\nlinux: {}\n", "hostname: a\u0085---\u0085linux: {}", "hostname: \"a\n---\nb\"\n",
		"%YAML 1.1\n---\nhostname: a\n...\n# x\n", "hostname: a\n\ufeff---\nlinux: {}\n", "a: |\n  ---\n  ...\nb: ---x\n",
		"\xff\xfeh\x00:\x00 \x00a\x00", "root:$6$salt$" + strings.Repeat("h", 86) + ":19500:0:99999:7:::\n",
		`{"labels":{"a\u001b[31m":1}}`, `{"port_mappings":[{"protocol":"` + strings.Repeat("x", 100) + `"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c *pod.Config
		var err error
		if n := testutil.Allocated(func() { c, err = pod.Decode(data) }); n > 50<<20 {
			t.Fatalf("Decode of %d bytes allocated %d bytes", len(data), n)
		}
		if err != nil {
			var de *pod.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, pod.ErrInvalid) || de.Reason == "" {
				t.Fatalf("Decode error %#v is not a complete *DecodeError", err)
			}
			if c != nil {
				t.Fatalf("Decode returned a config with an error")
			}
			// What it echoes of the input is short and printable.
			if msg := de.Error(); len(msg) > 512 || strings.IndexFunc(msg, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 {
				t.Fatalf("Decode error is long or unprintable: %q", msg)
			}
			return
		}
		if c == nil {
			t.Fatal("Decode returned neither a config nor an error")
		}
		// YAML it decodes is one document to the parser too: the converter
		// would have dropped any other.
		if in := bytes.TrimSpace(data); in[0] != '{' {
			dec := yaml.NewDecoder(bytes.NewReader(in))
			var doc any
			if err := dec.Decode(&doc); err != nil || !errors.Is(dec.Decode(&doc), io.EOF) {
				t.Fatalf("Decode decoded YAML that is not one document: %v", err)
			}
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("json.Marshal of a decoded config: %v", err)
		}
		if len(out) > maxConfigSize {
			return // escaping grew it past the limit
		}
		back, err := pod.Decode(out)
		if err != nil {
			t.Fatalf("Decode of its own config's JSON %s: %v", out, err)
		}
		if !configsEqual(c, back) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v\nJSON: %s", c, back, out)
		}
	})
}

// configsEqual compares configs, taking empty and nil maps and slices as
// equal (omitempty cannot tell them apart, and neither can a pod).
func configsEqual(a, b *pod.Config) bool {
	return reflect.DeepEqual(emptyToNil(reflect.ValueOf(a)).Interface(), emptyToNil(reflect.ValueOf(b)).Interface())
}

// emptyToNil returns a deep copy of v with every empty map and slice nil.
func emptyToNil(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(emptyToNil(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			if out.Field(i).CanSet() {
				out.Field(i).Set(emptyToNil(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(emptyToNil(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), emptyToNil(it.Value()))
		}
		return out
	}
	return v
}
