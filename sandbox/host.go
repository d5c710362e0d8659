package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"syscall"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/internal/cgroupdir"
	"github.com/podsmith/podsmith/internal/nsthread"
	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/nspin"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/spec"
)

// The seams of a Builder: what it asks of the host, the network and the
// runtime. Each is small, defined here by its one consumer; sandboxtest
// fakes all three, and an embedder may wrap the real ones.

// Host makes what a sandbox holds on the node: pinned network namespaces,
// mounts, the shared pause rootfs, and removes the pause's cgroup when a
// runtime did not. Every removal treats "not there" as success. RealHost
// is podsmith's netns, mounts and spec packages.
type Host interface {
	// CreateNetNS makes a network namespace with lo up, pinned at
	// dir/name, and returns the pin's path; opts says what else (the
	// sysctls of a pod without a pause, a user namespace that owns it).
	CreateNetNS(dir, name string, opts NetNSOptions) (string, error)
	// RemoveNetNS unpins it.
	RemoveNetNS(path string) error
	// PinNamespace makes the IPC or UTS namespace of a pod without a
	// pause, set up as ns says, pinned at path (a new file).
	PinNamespace(path string, ns Namespace) error
	// Unpin unpins what PinNamespace pinned.
	Unpin(path string) error
	// MountShm makes the directory path and mounts a shm tmpfs of size
	// bytes on it, owned by owner (nil: root).
	MountShm(path string, size int64, mountLabel string, owner *Owner) error
	// BindReadOnly makes the directory dst and binds src on it read-only.
	BindReadOnly(src, dst string) error
	// Unmount unmounts what is on path and removes the directory.
	Unmount(path string) error
	// PreparePauseRootfs makes (once) the pause rootfs under dir.
	PreparePauseRootfs(dir string, opts spec.PauseOptions) (*spec.PauseRootfs, error)
	// RemoveCgroup removes the cgroup dir (relative to each hierarchy's
	// root) in every hierarchy, killing what is left in it.
	RemoveCgroup(ctx context.Context, dir string) error
}

// NetNSOptions are what a pod's netns gets besides lo up.
type NetNSOptions struct {
	// Sysctls (net.*) are set in it: for a pod without a pause, whose
	// runtime sets none. Nil otherwise.
	Sysctls map[string]string
	// UserNS, if set, is a user namespace to create first and pin, which
	// then owns the netns: the pod's root holds CAP_NET_ADMIN over its
	// netns and over nothing of the node's.
	UserNS *UserNS
}

// UserNS is a pod's user namespace: where to pin it, its mappings, and a
// static binary (the pause) that a helper process runs while the
// namespaces are made and pinned (a Go process cannot enter a new user
// namespace itself: it has threads).
type UserNS struct {
	Path         string
	UIDs, GIDs   []specs.LinuxIDMapping
	HelperBinary string
	HelperArgs   []string
}

// Owner is who owns a mount: the host IDs of a user namespace's root.
type Owner struct{ UID, GID uint32 }

// Namespace is an IPC or UTS namespace a pod without a pause holds
// pinned, and what is set in it.
type Namespace struct {
	// Type is specs.IPCNamespace or specs.UTSNamespace.
	Type specs.LinuxNamespaceType
	// Hostname is set in a UTS namespace.
	Hostname string
	// Sysctls (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) are set
	// in an IPC namespace.
	Sysctls map[string]string
}

// RealHost returns the host as podsmith's netns, mounts and spec packages
// make it, for embedders that wrap it.
func RealHost() Host { return realHost{} }

type realHost struct{}

func (realHost) CreateNetNS(dir, name string, opts NetNSOptions) (string, error) {
	var ns *netns.NetNS
	var err error
	if u := opts.UserNS; u != nil {
		ns, err = netns.NewInUserNS(dir, name, netns.UserNS{Pin: u.Path, UIDs: u.UIDs, GIDs: u.GIDs, Helper: u.HelperBinary, HelperArgs: u.HelperArgs})
	} else {
		ns, err = netns.New(dir, name)
	}
	if err != nil {
		return "", err
	}
	if len(opts.Sysctls) > 0 {
		if err := ns.Do(func() error { return nsthread.WriteSysctls(opts.Sysctls) }); err != nil {
			errs := []error{err, ns.Remove()}
			if opts.UserNS != nil {
				errs = append(errs, nspin.Remove(opts.UserNS.Path))
			}
			return "", errors.Join(errs...)
		}
	}
	return ns.Path(), nil
}

func (realHost) RemoveNetNS(path string) error { return netns.Remove(path) }

func (realHost) PinNamespace(path string, ns Namespace) error {
	dir, name := filepath.Split(path)
	var err error
	switch ns.Type {
	case specs.IPCNamespace:
		_, err = nspin.NewIPC(dir, name, ns.Sysctls)
	case specs.UTSNamespace:
		_, err = nspin.NewUTS(dir, name, ns.Hostname)
	default:
		err = fmt.Errorf("cannot pin a %q namespace", ns.Type)
	}
	return err
}

func (realHost) Unpin(path string) error { return nspin.Remove(path) }

func (realHost) MountShm(path string, size int64, mountLabel string, owner *Owner) error {
	o := mounts.ShmOptions{Size: size, Max: size, MountLabel: mountLabel}
	if owner != nil {
		o.Owner = &mounts.Owner{UID: owner.UID, GID: owner.GID}
	}
	_, err := mounts.MountShm(path, o)
	return err
}

func (realHost) BindReadOnly(src, dst string) error { return mounts.BindReadOnly(src, dst) }

func (realHost) Unmount(path string) error { return mounts.Unmount(path) }

func (realHost) PreparePauseRootfs(dir string, opts spec.PauseOptions) (*spec.PauseRootfs, error) {
	return spec.PreparePauseRootfs(dir, opts)
}

func (realHost) RemoveCgroup(ctx context.Context, dir string) error {
	return cgroupdir.Remove(ctx, dir)
}

// Network attaches a pod's network namespace to the node's network.
// netns/cni implements it with CNI plugins. An implementation must be safe
// for concurrent use.
type Network interface {
	// Prepare checks what Attach will do, with no side effect, and records
	// in a.State what Attach, Detach and Check will need (netns/cni: the
	// network's whole configuration). The attachment, State included, is
	// then journaled, before Attach runs, so a Detach after a failure, a
	// crash, a reboot or a change of the node's configuration gets the
	// same one. ErrNoNetwork: nothing is configured, and the pod keeps
	// its loopback interface only.
	Prepare(ctx context.Context, a *NetworkAttachment) error
	// Attach connects the pod and returns its addresses, the primary
	// first.
	Attach(ctx context.Context, a *NetworkAttachment) ([]netip.Addr, error)
	// Detach disconnects it and releases its addresses. It is idempotent,
	// and must release the addresses even when the netns pin is gone (as
	// after a reboot).
	Detach(ctx context.Context, a *NetworkAttachment) error
	// Check verifies a live attachment.
	Check(ctx context.Context, a *NetworkAttachment) error
}

// NetworkCollector is a Network that can collect attachments no sandbox
// knows (CNI GC); Builder.CollectNetwork uses it. dir is the Builder's
// directory for the network's own state (see NetworkAttachment.Dir).
type NetworkCollector interface {
	Network
	GC(ctx context.Context, dir string, validSandboxIDs []string) error
}

// NetworkAttachment is one pod's attachment to the network: what the
// Builder tells the Network of the pod, and what the Network records of it
// (State). It is JSON, journaled whole before Attach.
type NetworkAttachment struct {
	SandboxID string `json:"sandbox_id"`
	// NetnsPath is the pinned network namespace; after a reboot it names
	// no namespace.
	NetnsPath    string            `json:"netns_path,omitempty"`
	Pod          pod.Metadata      `json:"pod"`
	PortMappings []pod.PortMapping `json:"port_mappings,omitempty"` // with a host port
	DNS          *pod.DNSConfig    `json:"dns,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	CgroupParent string            `json:"cgroup_parent,omitempty"`
	// Dir is the Builder's directory for the network's own state, if it
	// keeps any (netns/cni: libcni's cache): StateDir/network, one per
	// Builder, so two Builders never collect each other's attachments.
	Dir string `json:"dir"`
	// State is the Network's own record of the attachment, opaque to the
	// Builder.
	State json.RawMessage `json:"state,omitempty"`
}

// Runtime runs a sandbox's pause container (package oci drives runc and
// crun). With a Runtime, Build creates and starts the pause as its last
// steps, having journaled the container's removal first, and Stop,
// Destroy, a rollback and Recover remove the container (Kill, Wait,
// Delete) before anything it uses. Containers are named by sandbox ID. An
// implementation must be safe for concurrent use. One that also has
// Run(ctx, id, bundle string) (pid int, err error), as oci's, creating and
// starting the container in one call, gets that from Build's create step
// instead of Create (the pause then runs while the network attaches: it
// needs nothing of it), and its start step has nothing left to do.
type Runtime interface {
	// Create creates the container from the bundle, its process waiting
	// for Start, and returns the process's PID. A create cut short leaves
	// what it made for Delete.
	Create(ctx context.Context, id, bundle string) (pid int, err error)
	// Start starts a created container.
	Start(ctx context.Context, id string) error
	// Kill signals the container's process; a container that is gone, or
	// whose process has exited, is success.
	Kill(ctx context.Context, id string, sig syscall.Signal) error
	// Wait waits until the container's process has exited; a container
	// that is gone is success.
	Wait(ctx context.Context, id string) error
	// Delete deletes a container whose process has exited, and what a
	// create cut short left; a container that is gone is success.
	Delete(ctx context.Context, id string) error
	// State returns the container's state; an error matching
	// fs.ErrNotExist for a container that is not there.
	State(ctx context.Context, id string) (specs.State, error)
}
