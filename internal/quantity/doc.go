// Package quantity parses Kubernetes resource quantities ("64Mi", "1.5Gi",
// "10M", "100m", "1e3") into integers, with the grammar of
// k8s.io/apimachinery/pkg/api/resource and the rounding of its
// Quantity.Value, without depending on apimachinery. It is the one parser
// for the pod annotations that Kubernetes tools write as quantities: the
// shm size (io.kubernetes.cri-o.ShmSize, which CRI-O parses with
// resource.ParseQuantity) and the CNI bandwidth limits
// (kubernetes.io/ingress-bandwidth and kubernetes.io/egress-bandwidth, which
// kubelet parses the same way), so that a value CRI-O or kubelet takes is
// taken here too, and means the same number.
//
// The grammar, as Parse reads it:
//
//	quantity ::= [ "+" ] number [ suffix ]
//	number   ::= digits | digits "." | digits "." digits | "." digits
//	suffix   ::= binary | decimal | exponent
//	binary   ::= "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"      (powers of 1024)
//	decimal  ::= "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
//	                                          (10^-9, 10^-6, 10^-3, 10^3 … 10^18)
//	exponent ::= ( "e" | "E" ) [ "+" | "-" ] digits        (times 10^integer)
//
// with digits the ASCII digits 0 to 9, one or more; "E" alone is the exa
// suffix, "E" followed by an integer an exponent. Nothing else is taken: no
// white space, no other sign, no other suffix (K and ki are not Ki).
//
// The value is computed exactly (no floating point) and a fraction is
// rounded up to the next integer, as Quantity.Value does: "1.5" is 2,
// "100m" is 1, "0.5Ki" is 512, "1.5Gi" is 1610612736. Parsing costs time
// linear in the length of the input, whatever its exponent.
//
// Where it differs from apimachinery, deliberately:
//
//   - A minus sign is refused, even in "-0": the sizes and rates podsmith
//     reads are never negative, and a negative one is a mistake to report,
//     not a value to clamp.
//   - A value above math.MaxInt64 is refused (the error matches ErrRange).
//     apimachinery caps a binary-suffixed one at 2^63-1 and lets Value
//     overflow for the others.
//   - The number must have a digit. apimachinery's scanner, more lenient
//     than its documented grammar, reads "+", ".", "k" or "Mi" alone as 0.
//   - An exponent is used at its exact value, whatever its length.
//     apimachinery truncates it to 32 bits (there "1e4294967296" is 1, here
//     it is too large) and refuses one beyond 64 bits (here
//     "0e99999999999999999999" is 0 and "1e-99999999999999999999" rounds up
//     to 1).
//
// What it is not for: it does not represent quantities (there is no
// Quantity type, no formatting, no canonical form, no arithmetic), it does
// not keep fractions (CPU millicores, for one, need a milli-value, not this),
// and it applies no bounds but int64's: whether 1 byte of shm or 1Pi bits
// per second is reasonable is for the caller to say.
//
// Errors are *Error, which names the value (the first 64 bytes of it, in
// its message) and says what is wrong; all match ErrInvalid, and those of a
// well-formed value too large for an int64 match ErrRange as well.
package quantity
