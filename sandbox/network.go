package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/dns"
	"github.com/podsmith/podsmith/internal/flock"
	"github.com/podsmith/podsmith/internal/journal"
)

// attachment is what the Network is told of the pod.
func (bl *build) attachment() *NetworkAttachment {
	p := bl.p
	cfg := p.Config
	a := &NetworkAttachment{
		SandboxID: p.ID, NetnsPath: p.NetnsPath, Pod: cfg.Metadata, Annotations: cfg.Annotations,
		CgroupParent: p.CgroupParent, Dir: bl.b.networkDir(),
	}
	for _, pm := range cfg.PortMappings {
		if pm.HostPort > 0 { // a mapping without a host port publishes nothing
			a.PortMappings = append(a.PortMappings, pm)
		}
	}
	if d := cfg.DNSConfig; d != nil && (len(d.Servers) > 0 || len(d.Searches) > 0 || len(d.Options) > 0) {
		a.DNS = d
	}
	return a
}

// network attaches the pod to the node's network. The attachment's IPAM
// allocation survives a reboot, so must its undo: the journal's records
// from here on are fsynced, and so is the name link.
func (bl *build) network(ctx context.Context) error {
	nw := bl.b.opts.Network
	if nw == nil {
		return nil // loopback only: lo came up with the namespace
	}
	a := bl.attachment()
	// Prepare first: a configuration that does not load fails the step
	// before anything needs undoing.
	if err := nw.Prepare(ctx, a); err != nil {
		if errors.Is(err, ErrNoNetwork) {
			return nil
		}
		return err
	}
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	// A CollectNetwork must not run between the record of the attachment
	// and the end of the ADD: its list of valid sandboxes could miss this
	// one, and its GC undo the ADD.
	unlock, err := bl.b.lockNetwork(ctx, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	if err := bl.record(journal.Record{Op: opDetach, Name: bl.p.ID, Data: data}, true); err != nil {
		return err
	}
	if err := bl.b.syncNames(); err != nil {
		return err
	}
	if bl.p.IPs, err = nw.Attach(ctx, a); err != nil {
		return err
	}
	if len(bl.p.IPs) > 0 {
		// The pod's own name now resolves to its addresses. The file is
		// rewritten in place, not replaced: the runtime creating the pause
		// meanwhile may have opened it to bind it (runc does, for a pod in
		// a user namespace), and a bind of a replaced (unlinked) file
		// fails; the same inode also carries the addresses into a bind
		// made already.
		return rewrite(bl.p.Files.Hosts, dns.Hosts(bl.p.Hostname, bl.p.IPs))
	}
	return nil
}

// rewrite replaces the contents of the regular file at path in place.
func rewrite(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data) // *os.File.Write writes it all or fails
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// attached decodes an attachment the journal recorded, for the Network.
func (b *Builder) attached(data json.RawMessage) (*NetworkAttachment, error) {
	if b.opts.Network == nil {
		return nil, errors.New("the journal holds a network attachment, but the Builder has no Network")
	}
	var a NetworkAttachment
	return &a, json.Unmarshal(data, &a)
}

// detach undoes an attachment with what its journal recorded.
func (b *Builder) detach(ctx context.Context, data json.RawMessage) error {
	a, err := b.attached(data)
	if err != nil {
		return err
	}
	return b.opts.Network.Detach(ctx, a)
}

// CheckNetwork verifies the sandbox's live network attachment (CNI
// CHECK); ErrNotFound if it has none (host network, no Network, or
// stopped).
func (s *Sandbox) CheckNetwork(ctx context.Context) error {
	b := s.b
	recs, err := journal.Read(b.journalPath(s.ID))
	if journal.IsNotExist(err) {
		return fmt.Errorf("%w: %s", ErrNotFound, s.ID)
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", shortID(s.ID), err)
	}
	undone := undoneSet(recs)
	for _, r := range recs {
		if r.Op != opDetach || undone[r.Seq] {
			continue
		}
		a, err := b.attached(r.Data)
		if err != nil {
			return fmt.Errorf("sandbox %s: %w", shortID(s.ID), err)
		}
		return b.opts.Network.Check(ctx, a)
	}
	return fmt.Errorf("%w: sandbox %s has no network attachment", ErrNotFound, shortID(s.ID))
}

// CollectNetwork asks the Network to collect attachments that belong to no
// sandbox of this Builder (CNI GC: stale cached attachments are deleted,
// and plugins that support it collect their own). It waits for the
// attachments in progress to finish and holds new ones back meanwhile (a
// lock shared by the Builders of the state dir, across processes), so its
// list of valid sandboxes misses none. A no-op unless the Network is a
// NetworkCollector.
func (b *Builder) CollectNetwork(ctx context.Context) error {
	nc, ok := b.opts.Network.(NetworkCollector)
	if !ok {
		return nil
	}
	if _, err := b.Prepare(); err != nil {
		return err
	}
	unlock, err := b.lockNetwork(ctx, unix.LOCK_EX)
	if err != nil {
		return fmt.Errorf("sandbox: collect network: %w", err)
	}
	defer unlock()
	ids, err := b.ids()
	if err != nil {
		return err
	}
	return nc.GC(ctx, b.networkDir(), ids)
}

// The network lock keeps a CollectNetwork away from attachments in
// progress, across processes: a Build holds network.lock shared from the
// journal's record of the attachment to the end of its Attach; a
// CollectNetwork takes it exclusively. To get in at all between
// overlapping Builds, it first closes network.gate (exclusively), which
// every Build passes (shared, for an instant) on its way to network.lock.
func (b *Builder) networkLock() string { return filepath.Join(b.opts.StateDir, "network.lock") }

func (b *Builder) networkGate() string { return filepath.Join(b.opts.StateDir, "network.gate") }

// lockNetwork takes the network lock (unix.LOCK_SH for a Build, LOCK_EX
// for a CollectNetwork), waiting until ctx is done, and returns its
// release.
func (b *Builder) lockNetwork(ctx context.Context, how int) (func(), error) {
	return flock.Gated(ctx, b.networkGate(), b.networkLock(), how)
}
