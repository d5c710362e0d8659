package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

// DecodeError reports a pod config that does not decode: bad JSON or YAML,
// a field of the wrong type, an unknown field, a bad enum value. Field is
// the field's path ("linux.security_context.namespace_options.network"),
// when the error is about one.
type DecodeError struct {
	File   string // the file, for LoadConfig
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("sandbox: ")
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Is makes a DecodeError match ErrInvalidConfig.
func (e *DecodeError) Is(target error) bool { return target == ErrInvalidConfig }

// maxConfigSize bounds a pod config file.
const maxConfigSize = 4 << 20

// DecodeConfig decodes a pod config in JSON or YAML (crictl's pod config
// format). Unknown fields are an error, not ignored. The config is not
// validated; Builder.Plan does that.
func DecodeConfig(data []byte) (*Config, error) {
	if len(data) > maxConfigSize {
		return nil, &DecodeError{Reason: fmt.Sprintf("larger than %d bytes", maxConfigSize)}
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, &DecodeError{Reason: "empty"}
	}
	js := trimmed
	if trimmed[0] != '{' {
		if err := singleYAMLDocument(trimmed); err != nil {
			return nil, err
		}
		var err error
		if js, err = yaml.YAMLToJSON(trimmed); err != nil {
			return nil, &DecodeError{Reason: "invalid YAML: " + strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")}
		}
	}
	if err := noDuplicateKeys(js); err != nil {
		return nil, err
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, &DecodeError{Reason: "invalid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &DecodeError{Reason: "invalid JSON: data after the top-level object"}
	}
	if _, ok := raw.(map[string]any); !ok {
		return nil, &DecodeError{Reason: "not a JSON object"}
	}
	if err := checkFields(raw, reflect.TypeFor[Config](), ""); err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(js, &c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &DecodeError{Field: te.Field, Reason: fmt.Sprintf("cannot be a JSON %s (want %s)", te.Value, te.Type)}
		}
		return nil, &DecodeError{Reason: err.Error()}
	}
	return &c, nil
}

// noDuplicateKeys refuses a JSON document with a key twice in an object:
// encoding/json would merge the two values, and a reader of the file
// believe one of them. Paths are written as checkFields writes them.
func noDuplicateKeys(js []byte) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	type frame struct {
		t      reflect.Type // the Go type being filled, nil if unknown
		path   string
		object bool
		keys   map[string]bool
		key    string // the key whose value comes next (objects)
		index  int    // the index of the next value (arrays)
	}
	deref := func(t reflect.Type) reflect.Type {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		return t
	}
	// child returns the path and type of the value about to be read.
	var stack []*frame
	child := func() (string, reflect.Type) {
		if len(stack) == 0 {
			return "", reflect.TypeFor[Config]()
		}
		f := stack[len(stack)-1]
		switch {
		case !f.object:
			var et reflect.Type
			if f.t != nil && f.t.Kind() == reflect.Slice {
				et = deref(f.t.Elem())
			}
			return fmt.Sprintf("%s[%d]", f.path, f.index), et
		case f.t != nil && f.t.Kind() == reflect.Map:
			return fmt.Sprintf("%s[%q]", f.path, f.key), deref(f.t.Elem())
		case f.t != nil && f.t.Kind() == reflect.Struct:
			if sf, ok := jsonFields(f.t)[f.key]; ok {
				return join(f.path, f.key), deref(sf.Type)
			}
		}
		return join(f.path, f.key), nil
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // EOF, or a syntax error the decode reports with more context
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].key == "" {
			if k, ok := tok.(string); ok {
				f := stack[n-1]
				f.key = k
				if f.keys[k] {
					path, _ := child()
					return &DecodeError{Field: path, Reason: "duplicate key"}
				}
				f.keys[k] = true
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			path, t := child()
			stack = append(stack, &frame{t: t, path: path, object: tok == json.Delim('{'), keys: map[string]bool{}})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value (a scalar, or an object or array just closed) is done.
		if n := len(stack); n > 0 {
			if f := stack[n-1]; f.object {
				f.key = ""
			} else {
				f.index++
			}
		}
	}
}

// singleYAMLDocument refuses a YAML stream of more than one document (the
// converter would silently use the first) and, being strict, a mapping
// with a key twice.
func singleYAMLDocument(data []byte) error {
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	dec.SetStrict(true)
	var doc any
	for n := 0; ; n++ {
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &DecodeError{Reason: "invalid YAML: " + err.Error()}
		}
		if n == 1 {
			return &DecodeError{Reason: "more than one YAML document"}
		}
	}
}

// LoadConfig reads and decodes a pod config file; errors name the file. It
// reads no more than the size limit of a config.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sandbox: pod config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("sandbox: pod config: %w", err)
	}
	c, err := DecodeConfig(data)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			de.File = path
		}
		return nil, err
	}
	return c, nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// checkFields walks a decoded JSON value along the Go type it will decode
// into, and reports the first unknown field (in sorted key order), value of
// the wrong type or bad enum value, with its full path
// ("port_mappings[1].container_port", `linux.sysctls["net.core.somaxconn"]`).
// encoding/json's own errors name no index or key, or no path at all.
func checkFields(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil // null: the zero value
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		b, err := json.Marshal(v)
		if err != nil {
			return &DecodeError{Field: path, Reason: err.Error()}
		}
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(b); err != nil {
			return &DecodeError{Field: path, Reason: err.Error()}
		}
		return nil
	}
	wrongType := func(want string) error {
		return &DecodeError{Field: path, Reason: fmt.Sprintf("must be %s, not %s", want, jsonKind(v))}
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return wrongType("an object")
		}
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			f, ok := fields[k]
			if !ok {
				return &DecodeError{Field: join(path, k), Reason: "unknown field"}
			}
			if err := checkFields(obj[k], f.Type, join(path, k)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			return wrongType("an array")
		}
		for i, e := range arr {
			if err := checkFields(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return wrongType("an object")
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if err := checkFields(obj[k], t.Elem(), fmt.Sprintf("%s[%q]", path, k)); err != nil {
				return err
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return wrongType("a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return wrongType("true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return wrongType("an integer")
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil || reflect.New(t).Elem().OverflowInt(i) {
			return &DecodeError{Field: path, Reason: fmt.Sprintf("%s is not an integer that fits %s", n, t.Kind())}
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			return wrongType("an integer")
		}
		u, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil || reflect.New(t).Elem().OverflowUint(u) {
			return &DecodeError{Field: path, Reason: fmt.Sprintf("%s is not a non-negative integer that fits %s", n, t.Kind())}
		}
	}
	return nil
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f
	}
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
