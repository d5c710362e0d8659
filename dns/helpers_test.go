package dns

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// where is the place a ValidationError points at.
type where struct {
	Field string
	Index int
}

// validationErrors flattens err (as returned by Validate) into its
// ValidationErrors, failing the test on anything else.
func validationErrors(t testing.TB, err error) []*ValidationError {
	t.Helper()
	if err == nil {
		return nil
	}
	var out []*ValidationError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var ve *ValidationError
		require.True(t, errors.As(e, &ve), "not a *ValidationError: %#v", e)
		out = append(out, ve)
	}
	walk(err)
	return out
}

// wheres returns where each ValidationError in err points.
func wheres(t testing.TB, err error) []where {
	t.Helper()
	var out []where
	for _, ve := range validationErrors(t, err) {
		out = append(out, where{ve.Field, ve.Index})
	}
	return out
}

// domainOfLen returns a valid domain name of exactly n characters (n >= 1),
// made of 62-character labels and a last one of 1 to 63.
func domainOfLen(n int) string {
	b := []byte(strings.Repeat("a", n))
	for i := 62; i < n-1; i += 63 {
		b[i] = '.'
	}
	return string(b)
}

// searchesOfLen returns count valid search domains that, joined by single
// spaces, are exactly total characters long.
func searchesOfLen(total, count int) []string {
	per := (total - (count - 1)) / count
	first := per + (total-(count-1))%count
	out := []string{domainOfLen(first)}
	for range count - 1 {
		out = append(out, domainOfLen(per))
	}
	return out
}

// labelOfLen returns a valid DNS label of n characters.
func labelOfLen(n int) string { return strings.Repeat("b", n) }

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
