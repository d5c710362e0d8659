package pod

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
	"unicode/utf8"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/podsmith/podsmith/internal/regfile"
)

// DecodeError reports a pod config that does not decode: bad JSON or YAML,
// a field of the wrong type, an unknown field, a bad enum value, a shape
// beyond the bounds of a pod config, or (from Load) a file that is
// not a regular file. Field is the field's path
// ("linux.security_context.namespace_options.network"), when the error is
// about one. A key or value from the input that Field or Reason echoes is
// cut to a short, printable prefix.
type DecodeError struct {
	File   string // the file, for Load
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("pod: ")
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// ErrInvalid is matched by every error about a pod config that cannot be
// used: a *DecodeError here, and sandbox's validation errors.
var ErrInvalid = errors.New("invalid pod config")

// Is makes a DecodeError match ErrInvalid.
func (e *DecodeError) Is(target error) bool { return target == ErrInvalid }

// MaxSize bounds a pod config: Decode refuses a larger one and
// Load reads no more. A caller that reads a stream (standard input,
// for crictl's "-") reads at most MaxSize+1 bytes of it, for instance
// with io.LimitReader, and passes them to Decode.
const MaxSize = 4 << 20

// The shape of a config is bounded before any parser sees it, in one pass
// over its bytes, so that decoding costs time and memory linear in its
// size, and little (tens of ms and MB at most): encoding/json's own depth
// limit, 10000 levels, applies only after it has allocated per level, and
// the YAML parser allocates tens of bytes per byte and hundreds per node.
const (
	// maxDepth bounds the nesting of objects and arrays. The deepest field
	// of CRI's PodSandboxConfig (linux.security_context.namespace_options.
	// userns_options.uids[0].host_id) is 7 levels down, Config's 5; 32
	// leaves room for CRI to grow and makes any cost per level negligible.
	maxDepth = 32
	// maxValues bounds the values of a JSON config, counted as its commas
	// and opening brackets: a pod config has tens, maybe hundreds.
	maxValues = 1 << 14
	// maxYAMLSize and maxYAMLIndicators bound a YAML config, which costs
	// more than JSON to decode. A crictl pod config is a few KB, with about
	// a hundred of the bytes that may start a node (- ? : , [ {), counted
	// anywhere, even in strings; a larger config can be JSON.
	maxYAMLSize       = 1 << 20
	maxYAMLIndicators = 1 << 13
)

// Decode decodes a pod config in JSON or YAML (crictl's pod config
// format). Unknown fields and duplicate keys are errors, not ignored. The
// config is not validated; Builder.Plan does that.
func Decode(data []byte) (*Config, error) {
	if len(data) > MaxSize {
		return nil, &DecodeError{Reason: fmt.Sprintf("larger than %d bytes", MaxSize)}
	}
	js := bytes.TrimSpace(data)
	if len(js) == 0 {
		return nil, &DecodeError{Reason: "empty"}
	}
	if js[0] != '{' {
		var err error
		if js, err = yamlToJSON(js); err != nil {
			return nil, err
		}
	}
	if err := checkShape(js); err != nil {
		return nil, err
	}
	// sigs.k8s.io/json decodes as encoding/json does, but matches field
	// names case-sensitively and reports unknown fields and duplicate keys.
	var c Config
	strict, err := kjson.UnmarshalStrict(js, &c)
	if err == nil && len(strict) == 0 {
		return &c, nil
	}
	if syntax, _ := kjson.SyntaxErrorOffset(err); syntax {
		return nil, &DecodeError{Reason: "invalid JSON: " + libMessage(err)}
	}
	if err == nil {
		err = strict[0]
	}
	return nil, explain(js, err)
}

// checkShape refuses a JSON document nested more than maxDepth deep or with
// more than maxValues values.
func checkShape(js []byte) error {
	depth, values := 0, 0
	for i := 0; i < len(js); i++ {
		switch js[i] {
		case '"': // skip the string: to a quote after an even number of backslashes
			for {
				j := bytes.IndexByte(js[i+1:], '"')
				if j < 0 {
					return nil // the parser reports it
				}
				i += j + 1
				k := i
				for js[k-1] == '\\' {
					k--
				}
				if (i-k)%2 == 0 {
					break
				}
			}
		case '[', '{':
			if depth++; depth > maxDepth {
				return &DecodeError{Reason: fmt.Sprintf("nested more than %d levels deep", maxDepth)}
			}
			fallthrough
		case ',':
			if values++; values > maxValues {
				return &DecodeError{Reason: fmt.Sprintf("more than %d values", maxValues)}
			}
		case ']', '}':
			depth--
		}
	}
	return nil
}

// explain says where and why a JSON config does not decode. The library's
// errors cannot: they name a wrong type's field without the index or key of
// its list or map, an enum's error without any path, and a duplicate map
// key as labels.a. So the value is walked along Config's type, and only a
// duplicate key, which that walk cannot see, is the library's to report:
// decoded into any, which no value of the wrong type stops, and the
// outermost one (it may have replaced a value with another inside).
func explain(js []byte, err error) error {
	config := reflect.TypeFor[Config]()
	var v any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if dec.Decode(&v) == nil {
		if err := checkFields(v, config, ""); err != nil {
			return err
		}
	}
	dups, _ := kjson.UnmarshalStrict(js, new(any), kjson.DisallowDuplicateFields)
	dup := ""
	for _, d := range dups {
		if fe, ok := d.(kjson.FieldError); ok && (dup == "" || len(fe.FieldPath()) < len(dup)) {
			dup = fe.FieldPath()
		}
	}
	if dup != "" {
		return &DecodeError{Field: keyPath(config, dup), Reason: "duplicate key"}
	}
	return &DecodeError{Reason: libMessage(err)}
}

// keyPath writes a path of sigs.k8s.io/json (port_mappings[1].host_port,
// labels.a) as checkFields does (labels["a"]). The names before a map are
// Config's fields, without "." or "[" (or else the rest of the path is an
// unknown field's), and the rest is the map's key: Config's maps hold
// strings.
func keyPath(t reflect.Type, path string) string {
	var out []string
	for path != "" {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() == reflect.Map {
			return fmt.Sprintf("%s[%q]", strings.Join(out, "."), clip(path))
		}
		name, rest, _ := strings.Cut(path, ".")
		field, index, _ := strings.Cut(name, "[")
		f, ok := jsonFields(t)[field]
		if !ok {
			return join(strings.Join(out, "."), clip(path))
		}
		if out, path, t = append(out, name), rest, f.Type; index != "" {
			t = t.Elem()
		}
	}
	return strings.Join(out, ".")
}

// yamlToJSON converts a YAML config to JSON with sigs.k8s.io/yaml, which
// refuses a mapping with a key twice. What it does not do comes first, on
// the bytes alone: bound the parser's work, and refuse a stream of several
// documents (it would decode the first and ignore the rest).
//
// Anchors with aliases are refused: they expand (up to the parser's limit
// of some 400,000 nodes, about 100 MB), and a pod config has no use for
// them. An anchor or alias starts a token, so follows a blank, a line
// break, a flow indicator or a byte order mark; an & or * that follows one
// of those counts, even in a string.
func yamlToJSON(y []byte) ([]byte, error) {
	const tokenEnds = "\t\n\r ,-:?[]{}\x85\xa8\xa9\xbf"
	switch {
	case len(y) > maxYAMLSize:
		return nil, &DecodeError{Reason: fmt.Sprintf("YAML larger than %d bytes (a config this large can be JSON)", maxYAMLSize)}
	case bytes.HasPrefix(y, []byte("\xfe\xff")) || bytes.HasPrefix(y, []byte("\xff\xfe")):
		return nil, &DecodeError{Reason: "YAML in UTF-16, not UTF-8"}
	}
	indicators, anchor, alias := 0, false, false
	for i, c := range y {
		switch c {
		case '-', '?', ':', ',', '[', '{':
			indicators++
		case '&', '*':
			if i == 0 || strings.IndexByte(tokenEnds, y[i-1]) >= 0 {
				anchor, alias = anchor || c == '&', alias || c == '*'
			}
		}
	}
	switch {
	case indicators > maxYAMLIndicators:
		return nil, &DecodeError{Reason: fmt.Sprintf("YAML with more than %d of the bytes - ? : , [ { (a config this large can be JSON)", maxYAMLIndicators)}
	case anchor && alias:
		return nil, &DecodeError{Reason: "YAML anchors and aliases (&name, *name) are not supported"}
	case !oneYAMLDocument(bytes.TrimPrefix(y, []byte("\xef\xbb\xbf"))):
		return nil, &DecodeError{Reason: "more than one YAML document"}
	}
	js, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return nil, &DecodeError{Reason: "invalid YAML: " + strings.TrimPrefix(libMessage(err), "error converting YAML to JSON: ")}
	}
	if js[0] != '{' {
		return nil, &DecodeError{Reason: "the top level is not a mapping (an object)"}
	}
	return js, nil
}

// oneYAMLDocument reports whether a YAML stream holds one document at most,
// without a parser. To go.yaml.in/yaml/v2 (as to libyaml, which it ports), a
// line that starts with "---" or "..." and a blank is a document marker
// wherever it is (or an error, in a quoted scalar), and any document after
// the first starts with "---". So there is another document if a "---" line
// follows the start of the first, or anything but comments a "..." line.
func oneYAMLDocument(y []byte) bool {
	started, ended := false, false
	for len(y) > 0 {
		line := y
		if i := bytes.IndexAny(y, "\n\r\u0085\u2028\u2029"); i >= 0 {
			_, n := utf8.DecodeRune(y[i:])
			line, y = y[:i], y[i+n:]
		} else {
			y = nil
		}
		text := bytes.TrimLeft(line, " \t")
		marker := len(line) >= 3 && (string(line[:3]) == "---" || string(line[:3]) == "...") &&
			(len(line) == 3 || line[3] == ' ' || line[3] == '\t')
		switch {
		case marker && line[0] == '-' && started, !marker && ended && len(text) > 0 && text[0] != '#':
			return false
		case marker:
			started, ended = true, line[0] == '.'
		case len(text) > 0 && text[0] != '#' && text[0] != '%':
			started = true
		}
	}
	return true
}

// Load reads and decodes a pod config file; errors name the file. It
// refuses anything but a regular file (a FIFO, a device, a directory, a
// socket) without reading from it or waiting for a writer, and reads no
// more than MaxSize+1 bytes. Standard input is its caller's to read
// (see MaxSize).
func Load(path string) (*Config, error) {
	c, err := loadConfig(path)
	var de *DecodeError
	switch {
	case errors.As(err, &de):
		de.File = path
	case err != nil:
		err = fmt.Errorf("pod: config: %w", err)
	}
	return c, err
}

func loadConfig(path string) (*Config, error) {
	f, err := regfile.Open(path, os.O_RDONLY, true)
	var nr *regfile.NotRegularError
	if errors.As(err, &nr) {
		return nil, &DecodeError{Reason: nr.Kind + ", not a regular file"}
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// checkFields walks a decoded JSON value along the Go type it decodes into,
// and reports the first unknown field (in sorted key order), value of the
// wrong type or bad enum value, at its full path
// ("port_mappings[1].container_port", `linux.sysctls["net.core.somaxconn"]`).
func checkFields(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil // null: the zero value
	}
	wrongType := func() error {
		return &DecodeError{Field: path, Reason: fmt.Sprintf("must be %s, not %s", jsonTypes[t.Kind()], jsonKinds[reflect.TypeOf(v)])}
	}
	obj, isObject := v.(map[string]any)
	switch t.Kind() {
	case reflect.Struct:
		if !isObject {
			return wrongType()
		}
		fields := jsonFields(t)
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			f, ok := fields[k]
			if !ok {
				return &DecodeError{Field: join(path, clip(k)), Reason: "unknown field"}
			}
			if err := checkFields(obj[k], f.Type, join(path, k)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if !isObject {
			return wrongType()
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if err := checkFields(obj[k], t.Elem(), fmt.Sprintf("%s[%q]", path, clip(k))); err != nil {
				return err
			}
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			return wrongType()
		}
		for i, e := range arr {
			if err := checkFields(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.String, reflect.Bool:
		if _, isNumber := v.(json.Number); isNumber || reflect.TypeOf(v).Kind() != t.Kind() {
			return wrongType()
		}
	default: // an integer, or an enum, which decodes itself
		if reflect.PointerTo(t).Implements(unmarshalerType) {
			b, _ := json.Marshal(v)
			if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(b); err != nil {
				return &DecodeError{Field: path, Reason: libMessage(err)}
			}
		} else if n, ok := v.(json.Number); !ok {
			return wrongType()
		} else if json.Unmarshal([]byte(n), reflect.New(t).Interface()) != nil {
			return &DecodeError{Field: path, Reason: fmt.Sprintf("%s is not %s that fits %s", clip(n.String()), jsonTypes[t.Kind()], t.Kind())}
		}
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// jsonTypes name the JSON value that the kinds of Config's fields decode from.
var jsonTypes = map[reflect.Kind]string{
	reflect.Struct: "an object", reflect.Map: "an object", reflect.Slice: "an array", reflect.String: "a string",
	reflect.Bool: "true or false", reflect.Int32: "an integer", reflect.Int64: "an integer",
	reflect.Uint32: "a non-negative integer", reflect.Uint64: "a non-negative integer",
}

// jsonKinds name the JSON type of a decoded value.
var jsonKinds = map[reflect.Type]string{
	reflect.TypeFor[map[string]any](): "an object", reflect.TypeFor[[]any](): "an array",
	reflect.TypeFor[string](): "a string", reflect.TypeFor[json.Number](): "a number", reflect.TypeFor[bool](): "a boolean",
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

// clip cuts a key or value of the input that an error echoes to 32 bytes,
// its unprintable runes replaced: enough to find it in the file, but not
// the whole line of a file that is no pod config (a password hash, in a
// shadow file).
func clip(s string) string {
	const limit = 32
	var b strings.Builder
	for i, r := range s {
		if i+utf8.RuneLen(r) > limit {
			b.WriteString("…")
			break
		}
		if !strconv.IsPrint(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// libMessage is a library's error message on one line, with each value it
// quotes (a key, an enum's value) clipped, and cut short: YAML's lists
// every duplicate key.
func libMessage(err error) string {
	var b strings.Builder
	msg := strings.Join(strings.Fields(err.Error()), " ")
	for {
		i := strings.IndexAny(msg, "\"'")
		if i < 0 {
			break
		}
		j := i + 1 // to the closing quote, past escaped ones
		for ; j < len(msg) && msg[j] != msg[i]; j++ {
			if msg[j] == '\\' {
				j++
			}
		}
		j = min(j, len(msg))
		b.WriteString(msg[:i+1] + clip(msg[i+1:j]) + msg[j:min(j+1, len(msg))])
		msg = msg[min(j+1, len(msg)):]
	}
	if msg = b.String() + msg; len(msg) > 256 {
		msg = strings.ToValidUTF8(msg[:256], "") + "…"
	}
	return msg
}
