package quantity_test

import (
	"errors"
	"fmt"

	"github.com/podsmith/podsmith/internal/quantity"
)

func ExampleParse() {
	for _, s := range []string{"64Mi", "1.5Gi", "10M", "100m", "1e3", "-1Gi", "1GB", "8Ei"} {
		v, err := quantity.Parse(s)
		switch {
		case errors.Is(err, quantity.ErrRange):
			fmt.Println("out of range:", err)
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Printf("%s = %d\n", s, v)
		}
	}
	// Output:
	// 64Mi = 67108864
	// 1.5Gi = 1610612736
	// 10M = 10000000
	// 100m = 1
	// 1e3 = 1000
	// quantity "-1Gi": negative: a size or a rate is never negative
	// quantity "1GB": unknown suffix: want Ki, Mi, Gi, Ti, Pi or Ei (powers of 1024), n, u, m, k, M, G, T, P or E (powers of 1000), or an exponent such as e3
	// out of range: quantity "8Ei": too large: more than 9223372036854775807 (2^63-1)
}
