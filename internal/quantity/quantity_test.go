package quantity_test

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/podsmith/podsmith/internal/quantity"
	"github.com/podsmith/podsmith/internal/testutil"
)

func TestParse(t *testing.T) {
	for s, want := range map[string]int64{
		// Plain numbers, fractions rounded up.
		"0": 0, "1": 1, "+1": 1, "007": 7, "64": 64, "1.5": 2, "1.": 1, ".5": 1, "+.5": 1,
		"0.0": 0, ".0": 0, "0.": 0, "+0": 0, "1.0": 1, "2.000000000000000000000000000001": 3,
		"9223372036854775807": math.MaxInt64, "9223372036854775806.5": math.MaxInt64,
		"0009223372036854775807.000": math.MaxInt64,
		// Binary suffixes.
		"1Ki": 1 << 10, "1Mi": 1 << 20, "64Mi": 64 << 20, "1Gi": 1 << 30, "1.5Gi": 1610612736,
		"1Ti": 1 << 40, "1Pi": 1 << 50, "1Ei": 1 << 60, "7Ei": 7 << 60, "0.5Ki": 512,
		"0.1Ki": 103, ".001Ki": 2, "0Ei": 0, "7.999999999999999999Ei": math.MaxInt64,
		"1.Gi": 1 << 30,
		// Decimal suffixes.
		"1n": 1, "1u": 1, "100m": 1, "1000m": 1, "1001m": 2, "1500m": 2, "1000000000n": 1,
		"1k": 1e3, "1.5k": 1500, "10M": 1e7, "1G": 1e9, "1T": 1e12, "1P": 1e15, "1E": 1e18,
		"9.223372036854775807E": math.MaxInt64, "0.1k": 100, "0.0001k": 1, ".5M": 500000,
		// Exponents.
		"1e3": 1000, "1E3": 1000, "1e+3": 1000, "12E-1": 2, "1e-3": 1, "10e-1": 1, "1e0": 1,
		"1.5e3": 1500, "0e999999": 0, "0e99999999999999999999": 0, "1e-99999999999999999999": 1,
		"1e18": 1e18, "9.223372036854775807e18": math.MaxInt64, "1e003": 1000, "1E-0": 1,
		"123456789e-9": 1, "1000000001e-9": 2, "1e-1": 1,
		// Exact decimals: 0.1 × 10 is 1, not 1.0000000000000002.
		"0.1e1": 1, "0.3e1": 3, "0.7e1": 7, "0.29e2": 29, "0.1e2": 10,
	} {
		got, err := quantity.Parse(s)
		if assert.NoError(t, err, "%q", s) {
			assert.Equal(t, want, got, "%q", s)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for s, reason := range map[string]string{
		"":                         "empty",
		" 1":                       "white space",
		"1 ":                       "white space",
		"1 Mi":                     "white space",
		"1\tMi":                    "white space",
		"1\u00a0Mi":                "white space",
		"-1":                       "negative",
		"-0":                       "negative",
		"-1.5Gi":                   "negative",
		"-1e3":                     "negative",
		"+":                        "does not start with a number",
		"-":                        "does not start with a number",
		".":                        "does not start with a number",
		"+.":                       "does not start with a number",
		"Mi":                       "does not start with a number",
		"k":                        "does not start with a number",
		"e3":                       "does not start with a number",
		"abc":                      "does not start with a number",
		"++1":                      "does not start with a number",
		"+-1":                      "does not start with a number",
		"\uff11":                   "does not start with a number", // a full-width 1
		"1..5":                     "more than one decimal point",
		"1.5.":                     "more than one decimal point",
		"1e":                       "bad exponent",
		"1E+":                      "bad exponent",
		"1e-":                      "bad exponent",
		"1e1.5":                    "bad exponent",
		"1e3k":                     "bad exponent",
		"1e--3":                    "bad exponent",
		"1Ee3":                     "bad exponent",
		"1ee3":                     "bad exponent",
		"1K":                       "unknown suffix",
		"1ki":                      "unknown suffix",
		"1KiB":                     "unknown suffix",
		"1MB":                      "unknown suffix",
		"1Mi1":                     "unknown suffix",
		"1i":                       "unknown suffix",
		"1,5":                      "unknown suffix",
		"0x10":                     "unknown suffix",
		"1_000":                    "unknown suffix",
		"Inf":                      "does not start with a number",
		"9223372036854775808":      "too large",
		"9223372036854775807.1":    "too large",
		"8Ei":                      "too large",
		"10E":                      "too large",
		"1e19":                     "too large",
		"1e4294967296":             "too large", // apimachinery truncates the exponent to 32 bits: 1
		"1e99999999999999999999":   "too large",
		"999999999999999999999e-2": "too large",
	} {
		v, err := quantity.Parse(s)
		var qe *quantity.Error
		if !assert.ErrorAs(t, err, &qe, "%q gave %d", s, v) {
			continue
		}
		assert.Zero(t, v, "%q", s)
		assert.ErrorIs(t, err, quantity.ErrInvalid, "%q", s)
		assert.Equal(t, s, qe.Value)
		assert.Contains(t, qe.Reason, reason, "%q", s)
		assert.Equal(t, reason == "too large", errors.Is(err, quantity.ErrRange), "%q", s)
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := quantity.Parse("12X")
	assert.EqualError(t, err, `quantity "12X": unknown suffix: want Ki, Mi, Gi, Ti, Pi or Ei (powers of 1024), `+
		`n, u, m, k, M, G, T, P or E (powers of 1000), or an exponent such as e3`)

	// A long value is cut at 64 bytes, on a rune boundary.
	long := strings.Repeat("1", 63) + "é" + strings.Repeat("2", 4000)
	_, err = quantity.Parse(long)
	require.Error(t, err)
	assert.Equal(t, `quantity "`+strings.Repeat("1", 63)+`...": unknown suffix: want Ki, Mi, Gi, Ti, Pi or Ei (powers of 1024), `+
		`n, u, m, k, M, G, T, P or E (powers of 1000), or an exponent such as e3`, err.Error())
	var qe *quantity.Error
	require.ErrorAs(t, err, &qe)
	assert.Equal(t, long, qe.Value, "the Error keeps the whole value")

	// An Error made by hand matches ErrInvalid, not ErrRange.
	assert.ErrorIs(t, &quantity.Error{Value: "x", Reason: "y"}, quantity.ErrInvalid)
	assert.NotErrorIs(t, &quantity.Error{Value: "x", Reason: "y"}, quantity.ErrRange)
}

// Long inputs are parsed exactly and in linear time.
func TestParseLong(t *testing.T) {
	zeros := strings.Repeat("0", 4096)
	for s, want := range map[string]int64{
		zeros + "1":                          1,
		"1." + zeros:                         1,
		"1." + zeros + "1":                   2,
		"0." + zeros + "1":                   1,
		"0." + zeros + "1e4100":              1000,
		"0." + zeros + "1Ei":                 1, // 2^60 / 10^4097
		"1" + zeros + "e-4096":               1,
		"1" + zeros + "1e-4096":              11,
		"1" + zeros + "1e-4097":              2,
		"3" + zeros[:18] + "." + zeros + "1": 3e18 + 1,
	} {
		got, err := quantity.Parse(s)
		if assert.NoError(t, err, "%.20q…", s) {
			assert.Equal(t, want, got, "%.20q…", s)
		}
	}
	_, err := quantity.Parse("1" + zeros)
	assert.ErrorIs(t, err, quantity.ErrRange)

	// Linear in memory: a Parse allocates at most a few bytes per input
	// byte, for each shape of input. (Time is BenchmarkParseLong's: a
	// timed assertion here failed by chance on a loaded machine.)
	for _, shape := range longShapes {
		for _, n := range []int{4096, 16 * 4096} {
			s := shape(n)
			assert.LessOrEqual(t, testutil.Allocated(func() { _, _ = quantity.Parse(s) }), uint64(4*len(s)+1024), "%.30q…", s)
		}
	}
}

// longShapes are the inputs whose cost could grow faster than their
// length: long mantissas, long fractions, long exponents.
var longShapes = []func(n int) string{
	func(n int) string { return strings.Repeat("9", n) + "e-" + strconv.Itoa(n) },
	func(n int) string { return "0." + strings.Repeat("0", n) + "1Ei" },
	func(n int) string { return "1.5" + strings.Repeat("0", n) + "Ei" },
	func(n int) string { return "0." + strings.Repeat("5", n) + "Ei" },
	func(n int) string { return "1e" + strings.Repeat("9", n) },
	func(n int) string { return "1e-" + strings.Repeat("9", n) },
	func(n int) string { return strings.Repeat("5", n) + "e-" + strings.Repeat("0", n) + strconv.Itoa(n-2) },
}

// BenchmarkParseLong times each long shape at 4 KiB and 64 KiB: linear time
// shows as the same ns per byte (ns/op over the size) at both sizes.
func BenchmarkParseLong(b *testing.B) {
	for i, shape := range longShapes {
		for _, n := range []int{4096, 16 * 4096} {
			s := shape(n)
			b.Run(fmt.Sprintf("shape=%d/n=%d", i, n), func(b *testing.B) {
				b.SetBytes(int64(len(s)))
				for b.Loop() {
					_, _ = quantity.Parse(s)
				}
			})
		}
	}
}

// The model: the grammar as a regular expression, the value as a big.Rat.
var grammar = regexp.MustCompile(`^([+-]?)([0-9]+\.?[0-9]*|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$`)

// model returns what Parse should: the value, or whether it is refused for
// its range (too large) or otherwise. ok is false when the model cannot
// tell in reasonable time (an exponent of more than 4 digits).
func model(s string) (v int64, tooLarge, invalid, ok bool) {
	m := grammar.FindStringSubmatch(s)
	if m == nil {
		return 0, false, true, true
	}
	if m[1] == "-" {
		return 0, false, true, true
	}
	num := m[2]
	if strings.HasPrefix(num, ".") {
		num = "0" + num
	}
	if strings.HasSuffix(num, ".") {
		num += "0"
	}
	r, good := new(big.Rat).SetString(num)
	if !good {
		panic("model: " + num)
	}
	pow := func(base, exp int64) *big.Rat {
		p := new(big.Int).Exp(big.NewInt(base), big.NewInt(max(exp, -exp)), nil)
		if exp < 0 {
			return new(big.Rat).SetFrac(big.NewInt(1), p)
		}
		return new(big.Rat).SetInt(p)
	}
	switch suf := m[3]; {
	case suf == "":
	case suf[len(suf)-1] == 'i':
		r.Mul(r, pow(2, 10*int64(1+strings.IndexByte("KMGTPE", suf[0]))))
	case len(suf) == 1:
		r.Mul(r, pow(10, 3*int64(strings.IndexByte("num_kMGTPE", suf[0]))-9))
	default:
		digits := strings.TrimLeft(strings.TrimLeft(suf[1:], "+-"), "0")
		if len(digits) > 4 {
			return 0, false, false, false
		}
		e := int64(0)
		if digits != "" {
			e, _ = strconv.ParseInt(digits, 10, 64)
		}
		if suf[1] == '-' {
			e = -e
		}
		r.Mul(r, pow(10, e))
	}
	// ceil(r) for r >= 0.
	q, rem := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, true, false, true
	}
	return q.Int64(), false, false, true
}

func TestModel(t *testing.T) {
	// The model agrees with the table's values, so the fuzz target
	// compares Parse with something right.
	for s, want := range map[string]int64{"1.5Gi": 1610612736, "100m": 1, "12E-1": 2, "0.1e1": 1, "1.": 1, "1E": 1e18} {
		v, tooLarge, invalid, ok := model(s)
		require.True(t, ok && !tooLarge && !invalid, s)
		assert.Equal(t, want, v, s)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"0", "1", "1.5", ".5", "1.", "+1", "-1", "-0", "", " ", "1Ki", "1.5Gi", "7Ei", "8Ei", "100m", "1n",
		"1u", "1k", "10M", "1E", "1e3", "12E-1", "1e+3", "1e", "1E+", "9223372036854775807",
		"9223372036854775808", "0.1e1", "1..5", "1e1.5", "Mi", "k", ".", "+", "1K", "0e99999999999999999999",
		"1e-99999999999999999999", "000000000000000000000000000001.000000000000000000000000001Ei",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := quantity.Parse(s)
		if err != nil {
			var qe *quantity.Error
			if !errors.As(err, &qe) || !errors.Is(err, quantity.ErrInvalid) || qe.Value != s || qe.Reason == "" {
				t.Fatalf("%q: error of the wrong kind: %#v", s, err)
			}
			if v != 0 {
				t.Fatalf("%q: %d with an error", s, v)
			}
			// The message quotes at most 64 bytes of s: with quoting, at
			// most 4 bytes per byte of s, or 10 per 4-byte rune.
			if n := len(err.Error()) - len(qe.Reason); n > len(`quantity "...": `)+4*64 {
				t.Fatalf("%q: message of %d bytes besides the reason: %s", s, n, err)
			}
		} else if v < 0 {
			t.Fatalf("%q: negative %d", s, v)
		}

		// Against the model.
		if mv, tooLarge, invalid, ok := model(s); ok {
			switch {
			case invalid && err == nil:
				t.Fatalf("%q: parsed as %d, outside the grammar", s, v)
			case invalid && errors.Is(err, quantity.ErrRange):
				t.Fatalf("%q: out of range, but outside the grammar: %v", s, err)
			case tooLarge && !errors.Is(err, quantity.ErrRange):
				t.Fatalf("%q: too large, but Parse says %d, %v", s, v, err)
			case !invalid && !tooLarge && (err != nil || v != mv):
				t.Fatalf("%q: Parse says %d, %v; the model %d", s, v, err, mv)
			}
		}
		if err != nil {
			return
		}

		// Round trip: the integer it gave parses to itself.
		if w, err := quantity.Parse(strconv.FormatInt(v, 10)); err != nil || w != v {
			t.Fatalf("%q is %d, but %d parses as %d, %v", s, v, v, w, err)
		}
		// A plain number grows with its suffix, in the suffixes' order, up
		// to where it no longer fits.
		if strings.Trim(s, "+.0123456789") != "" {
			return
		}
		last := int64(0)
		for _, suf := range []string{"n", "u", "m", "", "k", "Ki", "M", "Mi", "G", "Gi", "T", "Ti", "P", "Pi", "E", "Ei"} {
			w, err := quantity.Parse(s + suf)
			if errors.Is(err, quantity.ErrRange) {
				break
			}
			if err != nil || w < last {
				t.Fatalf("%q: %d, %v after %d", s+suf, w, err, last)
			}
			last = w
		}
	})
}
