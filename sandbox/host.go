package sandbox

import (
	"context"
	"syscall"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/mounts"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/netns/cni"
	"github.com/podsmith/podsmith/spec"
)

// NetNSManager creates and removes pinned network namespaces. The default
// is the netns package.
type NetNSManager interface {
	// Create makes a network namespace with lo up, pinned at dir/name, and
	// returns the pin's path.
	Create(dir, name string) (string, error)
	// Remove unpins it; a pin that is gone is success.
	Remove(path string) error
}

// Mounter makes the sandbox's mounts. The default is the mounts package.
type Mounter interface {
	// MountShm creates the directory path and mounts a shm tmpfs of size
	// bytes on it.
	MountShm(path string, size int64, mountLabel string) error
	// BindReadOnly creates the directory dst and binds src on it
	// read-only.
	BindReadOnly(src, dst string) error
	// Unmount unmounts what is on path and removes the directory; a path
	// that is gone or not mounted is success.
	Unmount(path string) error
}

// RootfsProvider prepares the shared pause rootfs. The default is
// spec.PreparePauseRootfs.
type RootfsProvider interface {
	PreparePauseRootfs(dir string, opts spec.PauseOptions) (*spec.PauseRootfs, error)
}

// Network attaches a pod's network namespace to the node's networks. An
// implementation must be safe for concurrent use. netns/cni's Network
// implements it with CNI plugins.
type Network interface {
	// Prepare checks what Attach will do, with no side effect, and fills
	// in the Attachment what Detach will need (netns/cni: the network
	// configuration itself). The Attachment is then journaled, before
	// Attach runs.
	Prepare(ctx context.Context, a *Attachment) error
	// Attach connects the pod (CNI ADD) and returns its addresses.
	Attach(ctx context.Context, a *Attachment) (*AttachResult, error)
	// Detach disconnects it (CNI DEL). It must be idempotent, and must
	// release the pod's addresses even when the netns pin is gone (as
	// after a reboot).
	Detach(ctx context.Context, a *Attachment) error
	// Check verifies a live attachment (CNI CHECK).
	Check(ctx context.Context, a *Attachment) error
}

// NetworkCollector is a Network that can collect attachments nobody knows
// (CNI GC); Builder.CollectNetwork uses it.
type NetworkCollector interface {
	Network
	GC(ctx context.Context, validSandboxIDs []string) error
}

// Runtime runs a sandbox's pause container (package oci drives runc and
// crun). With a Runtime, Build creates and starts the pause as its last
// steps, having journaled the container's removal first, and Stop,
// Destroy, a rollback and Recover remove the container (Kill, Wait,
// Delete) before anything it uses. Containers are named by sandbox ID. An
// implementation must be safe for concurrent use.
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

// Attachment is what a Network needs to attach or detach a pod (see
// cni.Attachment). The journal records it before Attach runs, so a later
// Detach (after a failure, a crash or a reboot) gets the same one.
type Attachment = cni.Attachment

// AttachResult is what a Network reports of an attachment.
type AttachResult = cni.Result

// The real host.
type (
	hostNetNS   struct{}
	hostMounter struct{}
	hostRootfs  struct{}
)

func (hostNetNS) Create(dir, name string) (string, error) {
	ns, err := netns.New(dir, name)
	if err != nil {
		return "", err
	}
	return ns.Path(), nil
}

func (hostNetNS) Remove(path string) error { return netns.Remove(path) }

func (hostMounter) MountShm(path string, size int64, mountLabel string) error {
	_, err := mounts.MountShm(path, mounts.ShmOptions{Size: size, Max: size, MountLabel: mountLabel})
	return err
}

func (hostMounter) BindReadOnly(src, dst string) error { return mounts.BindReadOnly(src, dst) }

func (hostMounter) Unmount(path string) error { return mounts.Unmount(path) }

func (hostRootfs) PreparePauseRootfs(dir string, opts spec.PauseOptions) (*spec.PauseRootfs, error) {
	return spec.PreparePauseRootfs(dir, opts)
}

var (
	_ NetNSManager     = hostNetNS{}
	_ Mounter          = hostMounter{}
	_ RootfsProvider   = hostRootfs{}
	_ NetworkCollector = (*cni.Network)(nil)
)

// HostNetNS returns the real NetNSManager (the netns package), for
// embedders that wrap it.
func HostNetNS() NetNSManager { return hostNetNS{} }

// HostMounter returns the real Mounter (the mounts package).
func HostMounter() Mounter { return hostMounter{} }

// HostRootfs returns the real RootfsProvider (spec.PreparePauseRootfs).
func HostRootfs() RootfsProvider { return hostRootfs{} }
