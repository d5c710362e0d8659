package sandbox

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A journal that moves from the run dir to the state dir at any moment
// during findJournal is found.
func TestFindJournalDuringAMove(t *testing.T) {
	const durable, volatile = "state/j", "run/j"
	// The move: create the durable copy, then remove the volatile one.
	// It happens after the n-th look.
	for n := range 4 {
		looks := 0
		onDisk := map[string]bool{volatile: true}
		got := findJournal(durable, volatile, func(p string) bool {
			ok := onDisk[p]
			looks++
			if looks == n {
				onDisk[durable], onDisk[volatile] = true, false
			}
			return ok
		})
		assert.NotEmpty(t, got, "moved after look %d", n)
	}
	assert.Empty(t, findJournal(durable, volatile, func(string) bool { return false }))
	assert.Equal(t, durable, findJournal(durable, volatile, func(string) bool { return true }), "both: the moved one")
}
