package cri

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/spec"
)

// State is the CRI state of a sandbox: ready when it is built and its
// pause runs (running says so: the shim watches the pause), or when it is
// built without a pause (Sandbox.NoPause: its pins hold its namespaces);
// not ready in every other case (stopped, of an earlier boot, being built,
// needing cleanup).
func State(sb *sandbox.Sandbox, running bool) runtime.PodSandboxState {
	if sb.State == sandbox.StateBuilt && (running || sb.NoPause) {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

// PodSandbox is the sandbox as ListPodSandbox shows it.
func PodSandbox(sb *sandbox.Sandbox, running bool) *runtime.PodSandbox {
	cfg := config(sb)
	return &runtime.PodSandbox{
		Id:             sb.ID,
		Metadata:       metadata(cfg),
		State:          State(sb, running),
		CreatedAt:      sb.Created.UnixNano(),
		Labels:         maps.Clone(cfg.Labels),
		Annotations:    maps.Clone(cfg.Annotations),
		RuntimeHandler: cfg.RuntimeHandler,
	}
}

// Info is the verbose part of PodSandboxStatus, under the key "info", in
// JSON (as containerd's: crictl inspectp prints it).
type Info struct {
	Pid            int                  `json:"pid"`           // the pause's, 0 once it is stopped
	ProcessStatus  string               `json:"processStatus"` // "running" or "stopped" ("none" without a pause)
	NoPause        bool                 `json:"noPause,omitempty"`
	State          sandbox.State        `json:"state"` // podsmith's
	NetnsPath      string               `json:"netNamespacePath,omitempty"`
	BundleDir      string               `json:"bundleDir,omitempty"`
	RuntimeHandler string               `json:"runtimeHandler"`
	Config         *pod.Config          `json:"config"`
	RuntimeSpec    *spec.Spec           `json:"runtimeSpec,omitempty"`
	Timings        []sandbox.StepTiming `json:"timings,omitempty"` // of the Build's steps
	Error          string               `json:"error,omitempty"`   // why the journal could not be read
}

// Status is the sandbox's PodSandboxStatus, with the Info when verbose.
func Status(sb *sandbox.Sandbox, running, verbose bool) (*runtime.PodSandboxStatusResponse, error) {
	cfg := config(sb)
	st := &runtime.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       metadata(cfg),
		State:          State(sb, running),
		CreatedAt:      sb.Created.UnixNano(),
		Network:        &runtime.PodSandboxNetworkStatus{},
		Labels:         maps.Clone(cfg.Labels),
		Annotations:    maps.Clone(cfg.Annotations),
		RuntimeHandler: cfg.RuntimeHandler,
	}
	for i, ip := range sb.IPs {
		if i == 0 {
			st.Network.Ip = ip.String()
		} else {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip.String()})
		}
	}
	ns := cfg.Namespaces()
	opts := &runtime.NamespaceOption{
		Network: runtime.NamespaceMode(ns.Network), Pid: runtime.NamespaceMode(ns.Pid), Ipc: runtime.NamespaceMode(ns.Ipc), TargetId: ns.TargetID,
	}
	if u := ns.UsernsOptions; u != nil {
		opts.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode(u.Mode)}
		for _, m := range []struct {
			in  []pod.IDMapping
			out *[]*runtime.IDMapping
		}{{u.Uids, &opts.UsernsOptions.Uids}, {u.Gids, &opts.UsernsOptions.Gids}} {
			for _, im := range m.in {
				*m.out = append(*m.out, &runtime.IDMapping{HostId: im.HostID, ContainerId: im.ContainerID, Length: im.Length})
			}
		}
	}
	st.Linux = &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{Options: opts}}
	resp := &runtime.PodSandboxStatusResponse{Status: st}
	if !verbose {
		return resp, nil
	}
	in := Info{
		Pid: sb.PausePid, ProcessStatus: "stopped", NoPause: sb.NoPause, State: sb.State, NetnsPath: sb.NetnsPath, BundleDir: sb.BundleDir,
		RuntimeHandler: cfg.RuntimeHandler, Config: cfg, RuntimeSpec: sb.Spec, Timings: sb.Timings,
	}
	switch {
	case sb.NoPause:
		in.Pid, in.ProcessStatus = 0, "none"
	case running:
		in.ProcessStatus = "running"
	default:
		in.Pid = 0
	}
	if sb.Err != nil {
		in.Error = sb.Err.Error()
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	resp.Info = map[string]string{"info": string(b)}
	return resp, nil
}

// config is the sandbox's pod config; a sandbox whose journal could not be
// read (sandbox.Sandbox.Err) has none, only its ID.
func config(sb *sandbox.Sandbox) *pod.Config {
	if sb.Config == nil {
		return &pod.Config{}
	}
	return sb.Config
}

func metadata(cfg *pod.Config) *runtime.PodSandboxMetadata {
	m := cfg.Metadata
	return &runtime.PodSandboxMetadata{Name: m.Name, Uid: m.UID, Namespace: m.Namespace, Attempt: m.Attempt}
}

// Filter returns the sandboxes that pass ListPodSandbox's filter: its ID
// (a whole ID, or a prefix of just one), its state and every label of its
// selector. A nil filter passes all.
func Filter(items []*runtime.PodSandbox, f *runtime.PodSandboxFilter) []*runtime.PodSandbox {
	if f == nil {
		return items
	}
	if f.Id != "" {
		var ids []string
		for _, it := range items {
			ids = append(ids, it.Id)
		}
		id, ok := ResolveID(ids, f.Id)
		if !ok {
			return nil
		}
		f = &runtime.PodSandboxFilter{Id: id, State: f.State, LabelSelector: f.LabelSelector}
	}
	var out []*runtime.PodSandbox
	for _, it := range items {
		if f.Id != "" && it.Id != f.Id || f.State != nil && it.State != f.State.State {
			continue
		}
		match := true
		for k, v := range f.LabelSelector {
			if got, ok := it.Labels[k]; !ok || got != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, it)
		}
	}
	return out
}

// ResolveID finds ref among ids: a whole ID, or the prefix of just one
// (crictl passes what the user typed). ok is false when none matches or
// the prefix is ambiguous.
func ResolveID(ids []string, ref string) (id string, ok bool) {
	if ref == "" {
		return "", false
	}
	for _, c := range ids {
		switch {
		case c == ref:
			return c, true
		case strings.HasPrefix(c, ref):
			if id != "" {
				return "", false
			}
			id = c
		}
	}
	return id, id != ""
}

// Error is err as a gRPC status: an invalid config or an unsupported
// request is InvalidArgument (with every field path in the message), a
// name in use AlreadyExists, an unknown sandbox NotFound, a cancelled or
// timed out request Canceled or DeadlineExceeded; the rest is Internal,
// whose message names the step that failed. A status passes unchanged.
func Error(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var ue *UnsupportedError
	code := codes.Internal
	switch {
	case errors.As(err, &ue), errors.Is(err, sandbox.ErrInvalidConfig):
		code = codes.InvalidArgument
	case errors.Is(err, sandbox.ErrNameReserved):
		code = codes.AlreadyExists
	case errors.Is(err, sandbox.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
