package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
)

// A network's leaked rules are removed with the per-pod chains they jump
// to; nothing else is touched.
func TestRemoveRules(t *testing.T) {
	RequireRoot(t)
	RequireBinaries(t, "iptables", "iptables-save")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	tag := hex.EncodeToString(b)
	n := &CNINetwork{Name: "pst" + tag}
	own, dn := "PSTTEST-"+tag, "CNI-DN-psttest"+tag
	ipt := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("iptables", append([]string{"-t", "nat"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v: %s", args, err, out)
		}
	}
	ipt("-N", own)
	t.Cleanup(func() { _ = exec.Command("iptables", "-t", "nat", "-X", own).Run() })
	ipt("-N", dn)
	ipt("-A", dn, "-p", "tcp", "--dport", "1", "-j", "RETURN")
	ipt("-A", own, "-m", "comment", "--comment", `dnat name: "`+n.Name+`" id: "x"`, "-j", dn)
	ipt("-A", own, "-m", "comment", "--comment", "another-network", "-j", "RETURN")
	if len(n.Rules(t)) != 1 {
		t.Fatalf("rules naming %s: %v", n.Name, n.Rules(t))
	}

	n.removeRules(t)
	if rules := n.Rules(t); len(rules) != 0 {
		t.Errorf("left: %v", rules)
	}
	nat := NAT(t)
	if strings.Contains(nat, dn) {
		t.Errorf("chain %s left", dn)
	}
	if !strings.Contains(nat, `another-network`) {
		t.Error("removed another network's rule")
	}
	ipt("-F", own)
}
