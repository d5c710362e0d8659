package testutil

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSplitRule(t *testing.T) {
	assert.Equal(t,
		[]string{"-A", "POSTROUTING", "-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"},
		splitRule(`-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ`))
	assert.Equal(t, []string{"-A", "X", "--comment", `dnat name: "n" id: "1"`},
		splitRule(`-A X --comment "dnat name: \"n\" id: \"1\""`))
	assert.Equal(t, []string{"-A", "X", ""}, splitRule(`-A X ""`))
}
