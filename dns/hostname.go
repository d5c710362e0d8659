package dns

import (
	"fmt"
	"os"
	"strings"
)

// idHostnameLen is how many leading characters of the sandbox ID make the
// hostname of a pod that names none.
const idHostnameLen = 12

// ValidateHostname checks that h is a valid pod hostname: an RFC 1123
// subdomain of at most [MaxHostnameLen] characters, that is labels of 1 to
// 63 lowercase letters, digits and '-', not starting or ending with '-',
// joined by '.' (kubelet sends the pod's FQDN when the pod sets
// setHostnameAsFQDN). The error, if any, is a *[ValidationError] with
// Field "hostname" and Index -1.
func ValidateHostname(h string) error {
	if reason := hostnameReason(h); reason != "" {
		return newValidationError(fieldHostname, -1, h, reason)
	}
	return nil
}

func hostnameReason(h string) string {
	if h == "" {
		return "is empty"
	}
	if r := unsafeReason(h); r != "" {
		return r
	}
	if len(h) > MaxHostnameLen {
		return fmt.Sprintf("is %d characters long, at most %d allowed", len(h), MaxHostnameLen)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Sprintf("contains %q; only lowercase letters, digits, '-' and '.' are allowed", c)
		}
	}
	for label := range strings.SplitSeq(h, ".") {
		switch {
		case label == "":
			return "has an empty label (a leading, trailing or doubled '.')"
		case len(label) > 63:
			return fmt.Sprintf("has a label of %d characters, at most 63 allowed", len(label))
		case label[0] == '-' || label[len(label)-1] == '-':
			return "has a label that starts or ends with '-'"
		}
	}
	return ""
}

// Hostname chooses the hostname of a pod sandbox.
//
// With hostNetwork the pod shares the node's UTS namespace, so its hostname
// is the node's, as returned by nodeHostname (os.Hostname when nil). A
// non-empty podHostname that differs from it (ignoring case) is a
// *[ValidationError]: such a pod cannot have a name of its own.
//
// Otherwise podHostname is validated with [ValidateHostname] and returned;
// when it is empty the hostname is the first 12 characters of the sandbox
// ID id, which is an error if id is shorter.
func Hostname(podHostname, id string, hostNetwork bool, nodeHostname func() (string, error)) (string, error) {
	if hostNetwork {
		if nodeHostname == nil {
			nodeHostname = os.Hostname
		}
		node, err := nodeHostname()
		if err != nil {
			return "", fmt.Errorf("dns: node hostname: %w", err)
		}
		if node == "" {
			return "", fmt.Errorf("dns: node hostname is empty")
		}
		if podHostname != "" && !strings.EqualFold(podHostname, node) {
			return "", newValidationError(fieldHostname, -1, podHostname, fmt.Sprintf(
				"a host-network pod shares the node's UTS namespace and cannot have its own hostname (the node's is %q)", node))
		}
		return node, nil
	}
	if podHostname != "" {
		if err := ValidateHostname(podHostname); err != nil {
			return "", err
		}
		return podHostname, nil
	}
	if len(id) < idHostnameLen {
		return "", fmt.Errorf("dns: no hostname given and sandbox ID %q is shorter than %d characters", id, idHostnameLen)
	}
	h := id[:idHostnameLen]
	if err := ValidateHostname(h); err != nil {
		return "", fmt.Errorf("dns: hostname from sandbox ID: %w", err)
	}
	return h, nil
}

// HostnameFile renders the content of /etc/hostname for name: the name and
// a newline.
func HostnameFile(name string) []byte {
	return []byte(name + "\n")
}
