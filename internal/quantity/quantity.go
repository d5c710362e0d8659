package quantity

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	// ErrInvalid is matched by every error of Parse.
	ErrInvalid = errors.New("invalid quantity")
	// ErrRange is matched, besides ErrInvalid, by the error of a well-formed
	// quantity larger than math.MaxInt64.
	ErrRange = errors.New("quantity out of range")
)

// Error is a value Parse refuses.
type Error struct {
	Value  string // the input, whole
	Reason string // what is wrong, in plain words; it does not quote Value

	tooLarge bool
}

// maxEcho is how much of the value an Error's message quotes.
const maxEcho = 64

func (e *Error) Error() string {
	v := e.Value
	if len(v) > maxEcho {
		n := maxEcho
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		v = v[:n] + "..."
	}
	return fmt.Sprintf("quantity %q: %s", v, e.Reason)
}

// Is makes every Error match ErrInvalid, and one of a value too large match
// ErrRange.
func (e *Error) Is(target error) bool {
	return target == ErrInvalid || (target == ErrRange && e.tooLarge)
}

// The reasons of Parse's errors.
const (
	reasonEmpty    = "empty"
	reasonSpace    = "contains white space"
	reasonNoNumber = "does not start with a number (such as 64, 1.5 or .5)"
	reasonTwoDots  = "more than one decimal point"
	reasonExponent = "bad exponent: e or E must be followed by an integer, as in 1e3 or 12E-1"
	reasonSuffix   = "unknown suffix: want Ki, Mi, Gi, Ti, Pi or Ei (powers of 1024), " +
		"n, u, m, k, M, G, T, P or E (powers of 1000), or an exponent such as e3"
	reasonNegative = "negative: a size or a rate is never negative"
	reasonTooLarge = "too large: more than 9223372036854775807 (2^63-1)"
)

// Parse parses s, a Kubernetes resource quantity such as "64Mi", "1.5Gi",
// "10M", "100m" or "1e3", into an integer number of units, rounding a
// fraction up as Kubernetes' Quantity.Value does: "1.5" is 2, "100m" is 1,
// "1.5Gi" is 1610612736.
//
// The grammar is Kubernetes': an optional "+", a decimal number with an
// optional fraction ("1", "1.5", "1.", ".5"), then an optional suffix,
// binary (Ki, Mi, Gi, Ti, Pi, Ei: powers of 1024), decimal (n, u, m, k, M,
// G, T, P, E: powers of 1000 from 10^-9 to 10^18) or a decimal exponent
// ("e" or "E" and a signed integer: "1e3", "12E-1"). The package
// documentation lists where it deliberately differs from Kubernetes.
//
// Parse refuses, with an *Error that matches ErrInvalid: an empty string,
// white space anywhere, a minus sign (sizes and rates are never negative),
// anything else outside the grammar, and a value above math.MaxInt64 (that
// error matches ErrRange too). The error's message quotes at most 64 bytes
// of s. Parse takes time linear in len(s).
func Parse(s string) (int64, error) {
	fail := func(reason string) (int64, error) { return 0, &Error{Value: s, Reason: reason} }
	if s == "" {
		return fail(reasonEmpty)
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return fail(reasonSpace)
	}
	i, negative := 0, false
	switch s[0] {
	case '+':
		i++
	case '-':
		i, negative = 1, true
	}
	start := i
	i = skipDigits(s, i)
	whole, frac := s[start:i], ""
	if i < len(s) && s[i] == '.' {
		start = i + 1
		i = skipDigits(s, start)
		frac = s[start:i]
	}
	if whole == "" && frac == "" {
		return fail(reasonNoNumber)
	}
	exp10, exp2, reason := suffix(s[i:], int64(len(s))+64)
	if reason != "" {
		return fail(reason)
	}
	if negative {
		return fail(reasonNegative)
	}
	v, ok := value(whole+frac, exp10-int64(len(frac)), exp2)
	if !ok {
		return 0, &Error{Value: s, Reason: reasonTooLarge, tooLarge: true}
	}
	return v, nil
}

func skipDigits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// suffix reads the suffix after the number: the quantity is the number
// times 10^exp10 times 2^exp2. An exponent's magnitude is capped at limit,
// which is more than enough to decide the value (see value).
func suffix(s string, limit int64) (exp10 int64, exp2 uint, reason string) {
	switch s {
	case "":
		return 0, 0, ""
	case "Ki", "Mi", "Gi", "Ti", "Pi", "Ei":
		return 0, 10 * uint(1+strings.IndexByte("KMGTPE", s[0])), ""
	case "n", "u", "m", "k", "M", "G", "T", "P", "E":
		return 3*int64(strings.IndexByte("num_kMGTPE", s[0])) - 9, 0, ""
	}
	switch s[0] {
	case '.':
		return 0, 0, reasonTwoDots
	case 'e', 'E':
		s = s[1:]
		negative := false
		if s != "" && (s[0] == '+' || s[0] == '-') {
			negative, s = s[0] == '-', s[1:]
		}
		if s == "" || skipDigits(s, 0) != len(s) {
			return 0, 0, reasonExponent
		}
		for i := 0; i < len(s) && exp10 < limit; i++ {
			exp10 = exp10*10 + int64(s[i]-'0')
		}
		exp10 = min(exp10, limit)
		if negative {
			exp10 = -exp10
		}
		return exp10, 0, ""
	}
	return 0, 0, reasonSuffix
}

// value returns ceil(digits × 10^exp10 × 2^exp2), digits being a string of
// decimal digits and exp2 at most 60, or false if that is above
// math.MaxInt64. It takes time linear in len(digits), whatever exp10,
// provided |exp10| is at most about len(digits) more than needed to tell:
// suffix caps it at the length of the input plus 64.
func value(digits string, exp10 int64, exp2 uint) (int64, bool) {
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, true
	}
	trimmed := strings.TrimRight(digits, "0")
	exp10 += int64(len(digits) - len(trimmed))
	digits = trimmed
	// digits has no leading zero: digits × 10^exp10 is in
	// [10^(n+exp10-1), 10^(n+exp10)), and 2^exp2 in [1, 2^60 < 1.2e18].
	n := int64(len(digits))
	switch {
	case n+exp10 > 19: // at least 10^19
		return 0, false
	case n+exp10 < -19: // above 0, below 10^-20 × 1.2e18
		return 1, true
	}
	// Now |exp10| <= n+19: the digits of x = digits × 2^exp2, moved by
	// exp10 places, are few enough to handle one by one.
	x := mulPow2(digits, exp2)
	if exp10 >= 0 {
		if int64(len(x))+exp10 > 19 {
			return 0, false
		}
		var v int64
		ok := true
		for _, d := range x {
			v, ok = muladd(v, d)
			if !ok {
				return 0, false
			}
		}
		for range exp10 {
			if v, ok = muladd(v, 0); !ok {
				return 0, false
			}
		}
		return v, true
	}
	point := int64(len(x)) + exp10 // where the decimal point falls in x
	if point <= 0 {
		return 1, true // above 0, below 1
	}
	var v int64
	ok := true
	for _, d := range x[:point] {
		if v, ok = muladd(v, d); !ok {
			return 0, false
		}
	}
	for _, d := range x[point:] {
		if d != 0 { // a fraction: round up
			if v == math.MaxInt64 {
				return 0, false
			}
			return v + 1, true
		}
	}
	return v, true
}

// muladd returns v×10 + d, or false if that is above math.MaxInt64.
func muladd(v int64, d byte) (int64, bool) {
	if v > (math.MaxInt64-int64(d))/10 {
		return 0, false
	}
	return v*10 + int64(d), true
}

// mulPow2 returns the decimal digits (as values 0 to 9, most significant
// first, no leading zero) of digits × 2^k, for k at most 60 and digits
// without a leading zero.
func mulPow2(digits string, k uint) []byte {
	const room = 20 // 2^60 has 19 digits
	x := make([]byte, room+len(digits))
	for i := range len(digits) {
		x[room+i] = digits[i] - '0'
	}
	// Each step: t <= 9×2^k + carry, and carry <= 2^k (by induction:
	// (9×2^k + 2^k)/10 = 2^k), so t <= 10×2^60 < 2^64.
	var carry uint64
	for i := len(x) - 1; i >= room; i-- {
		t := uint64(x[i])<<k + carry
		x[i], carry = byte(t%10), t/10
	}
	start := room
	for ; carry > 0; carry /= 10 {
		start--
		x[start] = byte(carry % 10)
	}
	return x[start:]
}
