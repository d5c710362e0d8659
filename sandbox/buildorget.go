package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/podsmith/podsmith/internal/journal"
	"github.com/podsmith/podsmith/pod"
)

// BuildOrGet is Build for a caller that may ask twice for one pod, as
// kubelet retries RunPodSandbox after a timeout. Where Build would find
// the name taken, BuildOrGet looks at the sandbox that holds it: one being
// built is waited for (until ctx is done); one built from an identical
// config is returned, with built false; one that needs cleanup (its Build
// failed or crashed) is destroyed, and the pod built anew. A sandbox of
// the name with another config, or a stopped one, is a *NameReservedError
// naming it, as from Build.
func (b *Builder) BuildOrGet(ctx context.Context, cfg *pod.Config) (sb *Sandbox, built bool, err error) {
	for range 3 {
		sb, err = b.Build(ctx, cfg)
		var nr *NameReservedError
		if !errors.As(err, &nr) {
			return sb, err == nil, err
		}
		held, herr := b.settled(ctx, nr.ID)
		switch {
		case errors.Is(herr, ErrNotFound):
			continue // gone meanwhile (a failed Build rolled back): build
		case herr != nil:
			return nil, false, herr
		case held.State == StateNeedsCleanup:
			if err := held.Destroy(ctx); err != nil {
				return nil, false, err
			}
			continue
		case held.State == StateBuilt && sameConfig(held.Config, cfg):
			return held, false, nil
		}
		return nil, false, err
	}
	return nil, false, err
}

// settled returns the sandbox id once no Build holds it.
func (b *Builder) settled(ctx context.Context, id string) (*Sandbox, error) {
	sb, err := b.load(id)
	if err != nil || sb.State != StateBuilding {
		return sb, err
	}
	j, err := journal.OpenKnown(ctx, b.journalPath(id), journal.Snapshot{})
	if journal.IsNotExist(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: waiting for its Build: %w", shortID(id), err)
	}
	j.Close()
	return b.load(id)
}

// sameConfig reports whether two pod configs ask for the same thing: equal
// in JSON, as the journal keeps them.
func sameConfig(a, b *pod.Config) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
