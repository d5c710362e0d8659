package sandbox

import (
	"sync"

	"github.com/opencontainers/selinux/go-selinux"
)

// heldLabels are the SELinux process labels whose MCS pairs this Builder's
// sandboxes hold (reserved in go-selinux's in-process list).
type heldLabels struct {
	mu     sync.Mutex
	labels map[string]bool
}

func (h *heldLabels) hold(label string) {
	if label == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.labels == nil {
		h.labels = map[string]bool{}
	}
	h.labels[label] = true
}

// release gives a held label's MCS pair back, once: a Destroy retried
// after its undone record could not be written must not release a pair
// another sandbox has been given since.
func (h *heldLabels) release(label string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.labels[label] {
		delete(h.labels, label)
		selinux.ReleaseLabel(label)
	}
}
