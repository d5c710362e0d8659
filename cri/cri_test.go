package cri_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsmith/podsmith/cri"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
	"github.com/podsmith/podsmith/sandbox/sandboxtest"
)

// fullRequest sets every field of a Linux RunPodSandboxRequest.
func fullRequest() *runtime.RunPodSandboxRequest {
	res := func(n int64) *runtime.LinuxContainerResources {
		return &runtime.LinuxContainerResources{
			CpuPeriod: n, CpuQuota: n + 1, CpuShares: n + 2, MemoryLimitInBytes: n + 3, OomScoreAdj: n + 4,
			CpusetCpus: "0-1", CpusetMems: "0", HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4096}},
			Unified: map[string]string{"memory.high": "1G"}, MemorySwapLimitInBytes: n + 5,
		}
	}
	return &runtime.RunPodSandboxRequest{
		RuntimeHandler: "crun",
		Config: &runtime.PodSandboxConfig{
			Metadata:     &runtime.PodSandboxMetadata{Name: "web", Uid: "u-1", Namespace: "default", Attempt: 3},
			Hostname:     "web-0",
			LogDirectory: "/var/log/pods/default_web_u-1",
			DnsConfig:    &runtime.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"default.svc"}, Options: []string{"ndots:5"}},
			PortMappings: []*runtime.PortMapping{{Protocol: runtime.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"}},
			Labels:       map[string]string{"app": "web"},
			Annotations:  map[string]string{"note": "hi"},
			Linux: &runtime.LinuxPodSandboxConfig{
				CgroupParent: "/kubepods/pod-u-1",
				Sysctls:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
				Overhead:     res(100),
				Resources:    res(200),
				SecurityContext: &runtime.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtime.NamespaceOption{
						Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD, TargetId: "t",
						UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
							Uids: []*runtime.IDMapping{{HostId: 100000, ContainerId: 0, Length: 65536}},
							Gids: []*runtime.IDMapping{{HostId: 200000, ContainerId: 1, Length: 7}}},
					},
					SelinuxOptions:           &runtime.SELinuxOption{User: "u", Role: "r", Type: "t", Level: "s0"},
					RunAsUser:                &runtime.Int64Value{Value: 1000},
					RunAsGroup:               &runtime.Int64Value{Value: 2000},
					ReadonlyRootfs:           true,
					SupplementalGroups:       []int64{5, 6},
					SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict,
					Privileged:               true,
					Seccomp:                  &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/p.json"},
					Apparmor:                 &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined},
					//lint:ignore SA1019 deprecated, but kubelet may still send it
					SeccompProfilePath: "runtime/default",
				},
			},
		},
	}
}

func TestConfigCarriesEveryField(t *testing.T) {
	cfg, err := cri.Config(fullRequest())
	require.NoError(t, err)
	res := func(n int64) *pod.Resources {
		return &pod.Resources{
			CPUPeriod: n, CPUQuota: n + 1, CPUShares: n + 2, MemoryLimitInBytes: n + 3, OomScoreAdj: n + 4,
			CpusetCpus: "0-1", CpusetMems: "0", HugepageLimits: []pod.HugepageLimit{{PageSize: "2MB", Limit: 4096}},
			Unified: map[string]string{"memory.high": "1G"}, MemorySwapLimitInBytes: n + 5,
		}
	}
	want := &pod.Config{
		Metadata:     pod.Metadata{Name: "web", UID: "u-1", Namespace: "default", Attempt: 3},
		Hostname:     "web-0",
		LogDirectory: "/var/log/pods/default_web_u-1",
		DNSConfig:    &pod.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"default.svc"}, Options: []string{"ndots:5"}},
		PortMappings: []pod.PortMapping{{Protocol: pod.ProtocolUDP, ContainerPort: 53, HostPort: 5353, HostIP: "127.0.0.1"}},
		Labels:       map[string]string{"app": "web"},
		Annotations:  map[string]string{"note": "hi"},
		Linux: &pod.LinuxConfig{
			CgroupParent: "/kubepods/pod-u-1",
			Sysctls:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
			Overhead:     res(100),
			Resources:    res(200),
			SecurityContext: &pod.SecurityContext{
				NamespaceOptions: &pod.NamespaceOptions{Network: pod.NamespaceNode, Pid: pod.NamespaceContainer, Ipc: pod.NamespacePod, TargetID: "t",
					UsernsOptions: &pod.UserNamespace{Mode: pod.NamespacePod,
						Uids: []pod.IDMapping{{HostID: 100000, ContainerID: 0, Length: 65536}},
						Gids: []pod.IDMapping{{HostID: 200000, ContainerID: 1, Length: 7}}}},
				SelinuxOptions:     &pod.SELinuxOptions{User: "u", Role: "r", Type: "t", Level: "s0"},
				RunAsUser:          &pod.Int64Value{Value: 1000},
				RunAsGroup:         &pod.Int64Value{Value: 2000},
				ReadonlyRootfs:     true,
				SupplementalGroups: []int64{5, 6},
				Privileged:         true,
				Seccomp:            &pod.SecurityProfile{ProfileType: pod.ProfileLocalhost, LocalhostRef: "/p.json"},
				Apparmor:           &pod.SecurityProfile{ProfileType: pod.ProfileUnconfined},
				SeccompProfilePath: "runtime/default",
			},
		},
		RuntimeHandler: "crun",
	}
	assert.Equal(t, want, cfg)

	// The int64 fields that protojson writes as strings come across as
	// numbers: the converted config survives pod's strict decoder.
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	back, err := pod.Decode(data)
	require.NoError(t, err)
	assert.Equal(t, cfg, back)
}

// withUnknownField is m with a field (number 999) its type does not have,
// as a newer kubelet's message would be.
func withUnknownField[M proto.Message](t *testing.T, m M) M {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	b = protowire.AppendTag(b, 999, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	out := m.ProtoReflect().New().Interface().(M)
	require.NoError(t, proto.Unmarshal(b, out))
	return out
}

func TestConfigRefusesWhatItCannotGive(t *testing.T) {
	sec := func(r *runtime.RunPodSandboxRequest) *runtime.LinuxSandboxSecurityContext {
		return r.Config.Linux.SecurityContext
	}
	for _, c := range []struct {
		name  string
		edit  func(t *testing.T, r *runtime.RunPodSandboxRequest)
		field string
	}{
		{"no config", func(_ *testing.T, r *runtime.RunPodSandboxRequest) { r.Config = nil }, "config"},
		{"windows", func(_ *testing.T, r *runtime.RunPodSandboxRequest) {
			r.Config.Windows = &runtime.WindowsPodSandboxConfig{}
		}, "windows"},
		{"null mapping", func(_ *testing.T, r *runtime.RunPodSandboxRequest) {
			sec(r).NamespaceOptions.UsernsOptions.Gids = []*runtime.IDMapping{nil}
		}, "linux.security_context.namespace_options.userns_options.gids[0]"},
		{"new mapping field", func(t *testing.T, r *runtime.RunPodSandboxRequest) {
			sec(r).NamespaceOptions.UsernsOptions.Uids = []*runtime.IDMapping{withUnknownField(t, &runtime.IDMapping{Length: 1})}
		}, "linux.security_context.namespace_options.userns_options.uids[0]"},
		{"supplemental groups policy", func(_ *testing.T, r *runtime.RunPodSandboxRequest) {
			sec(r).SupplementalGroupsPolicy = 7
		}, "linux.security_context.supplemental_groups_policy"},
		{"new security field", func(t *testing.T, r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext = withUnknownField(t, sec(r))
		}, "linux.security_context"},
		{"new namespace field", func(t *testing.T, r *runtime.RunPodSandboxRequest) {
			sec(r).NamespaceOptions = withUnknownField(t, sec(r).NamespaceOptions)
		}, "linux.security_context.namespace_options"},
		{"new seccomp field", func(t *testing.T, r *runtime.RunPodSandboxRequest) {
			sec(r).Seccomp = withUnknownField(t, sec(r).Seccomp)
		}, "linux.security_context.seccomp"},
		{"new selinux field", func(t *testing.T, r *runtime.RunPodSandboxRequest) {
			sec(r).SelinuxOptions = withUnknownField(t, sec(r).SelinuxOptions)
		}, "linux.security_context.selinux_options"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := fullRequest()
			c.edit(t, r)
			_, err := cri.Config(r)
			var ue *cri.UnsupportedError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, c.field, ue.Field)
			assert.Equal(t, codes.InvalidArgument, status.Code(cri.Error(err)))
		})
	}
	// A new field elsewhere is ignored, as older runtimes ignore it.
	r := fullRequest()
	r.Config = withUnknownField(t, r.Config)
	r.Config.Linux = withUnknownField(t, r.Config.Linux)
	_, err := cri.Config(r)
	require.NoError(t, err)
}

func TestStatusAndList(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{})
	ctx := context.Background()
	req := &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
		Metadata:    &runtime.PodSandboxMetadata{Name: "web", Uid: "u-1", Namespace: "default", Attempt: 2},
		Labels:      map[string]string{"app": "web", "tier": "front"},
		Annotations: map[string]string{"abc": "def"},
	}}
	cfg, err := cri.Config(req)
	require.NoError(t, err)
	sb, err := b.Build(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Destroy(ctx) })

	resp, err := cri.Status(sb, true, true)
	require.NoError(t, err)
	st := resp.Status
	assert.Equal(t, sb.ID, st.Id)
	assert.Equal(t, &runtime.PodSandboxMetadata{Name: "web", Uid: "u-1", Namespace: "default", Attempt: 2}, st.Metadata)
	assert.Equal(t, runtime.PodSandboxState_SANDBOX_READY, st.State)
	assert.Equal(t, sb.Created.UnixNano(), st.CreatedAt)
	assert.Equal(t, sb.IPs[0].String(), st.Network.Ip)
	assert.Equal(t, runtime.NamespaceMode_POD, st.Linux.Namespaces.Options.Network)
	assert.Equal(t, req.Config.Labels, st.Labels)
	assert.Equal(t, req.Config.Annotations, st.Annotations)
	var info cri.Info
	require.NoError(t, json.Unmarshal([]byte(resp.Info["info"]), &info))
	assert.Equal(t, sb.PausePid, info.Pid)
	assert.Equal(t, "running", info.ProcessStatus)
	assert.Equal(t, cfg, info.Config)
	require.NotNil(t, info.RuntimeSpec)
	assert.Equal(t, sb.ID, info.RuntimeSpec.Annotations["io.kubernetes.cri.sandbox-id"])

	quiet, err := cri.Status(sb, false, false)
	require.NoError(t, err)
	assert.Nil(t, quiet.Info)
	assert.Equal(t, runtime.PodSandboxState_SANDBOX_NOTREADY, quiet.Status.State, "a pause that does not run")

	item := cri.PodSandbox(sb, true)
	assert.Equal(t, &runtime.PodSandbox{Id: sb.ID, Metadata: st.Metadata, State: runtime.PodSandboxState_SANDBOX_READY,
		CreatedAt: st.CreatedAt, Labels: st.Labels, Annotations: st.Annotations}, item)
	assert.Nil(t, st.Linux.Namespaces.Options.UsernsOptions, "none asked for")
}

// A pod without a pause is ready while it is built; a pod's user
// namespace shows in its status.
func TestStatusWithoutAPauseAndWithAUserNamespace(t *testing.T) {
	b, _ := sandboxtest.NewBuilder(t, sandbox.Options{PauseMode: sandbox.PauseForSharedPID})
	ctx := context.Background()
	m := []*runtime.IDMapping{{HostId: 1 << 30, ContainerId: 0, Length: 65536}}
	req := &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "np", Uid: "u-2", Namespace: "default"},
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
		}},
	}}
	cfg, err := cri.Config(req)
	require.NoError(t, err)
	sb, err := b.Build(ctx, cfg)
	require.NoError(t, err)
	require.True(t, sb.NoPause)
	resp, err := cri.Status(sb, false, true)
	require.NoError(t, err)
	assert.Equal(t, runtime.PodSandboxState_SANDBOX_READY, resp.Status.State, "no pause to run: ready while built")
	var info cri.Info
	require.NoError(t, json.Unmarshal([]byte(resp.Info["info"]), &info))
	assert.Equal(t, "none", info.ProcessStatus)
	assert.True(t, info.NoPause)
	require.NoError(t, sb.Stop(ctx))
	assert.Equal(t, runtime.PodSandboxState_SANDBOX_NOTREADY, cri.State(sb, false))
	require.NoError(t, sb.Destroy(ctx))

	req.Config.Metadata.Name = "userns"
	req.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{
		UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m},
	}
	cfg, err = cri.Config(req)
	require.NoError(t, err)
	sb, err = b.Build(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Destroy(ctx) })
	resp, err = cri.Status(sb, true, false)
	require.NoError(t, err)
	got := resp.Status.Linux.Namespaces.Options.UsernsOptions
	assert.True(t, proto.Equal(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}, got), "%v", got)
}

func TestFilter(t *testing.T) {
	items := []*runtime.PodSandbox{
		{Id: "aaa111", State: runtime.PodSandboxState_SANDBOX_READY, Labels: map[string]string{"app": "a"}},
		{Id: "aaa222", State: runtime.PodSandboxState_SANDBOX_NOTREADY, Labels: map[string]string{"app": "a", "x": "1"}},
		{Id: "bbb333", State: runtime.PodSandboxState_SANDBOX_READY, Labels: map[string]string{"app": "b"}},
	}
	ids := func(f *runtime.PodSandboxFilter) []string {
		var out []string
		for _, it := range cri.Filter(items, f) {
			out = append(out, it.Id)
		}
		return out
	}
	ready := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}
	assert.Equal(t, []string{"aaa111", "aaa222", "bbb333"}, ids(nil))
	assert.Equal(t, []string{"aaa111", "aaa222", "bbb333"}, ids(&runtime.PodSandboxFilter{}))
	assert.Equal(t, []string{"aaa222"}, ids(&runtime.PodSandboxFilter{Id: "aaa222"}))
	assert.Equal(t, []string{"bbb333"}, ids(&runtime.PodSandboxFilter{Id: "b"}), "a unique prefix")
	assert.Empty(t, ids(&runtime.PodSandboxFilter{Id: "aaa"}), "an ambiguous prefix")
	assert.Empty(t, ids(&runtime.PodSandboxFilter{Id: "zzz"}))
	assert.Equal(t, []string{"aaa111", "bbb333"}, ids(&runtime.PodSandboxFilter{State: ready}), "READY is 0: the message, not the number, says it is set")
	assert.Equal(t, []string{"aaa111", "aaa222"}, ids(&runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "a"}}))
	assert.Equal(t, []string{"aaa222"}, ids(&runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "a", "x": "1"}}))
	assert.Empty(t, ids(&runtime.PodSandboxFilter{Id: "aaa222", State: ready}))
}

func TestError(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{&sandbox.ConfigError{Problems: []*sandbox.Problem{{Field: "metadata.name", Reason: "required"}}}, codes.InvalidArgument},
		{&sandbox.NameReservedError{Name: "n", ID: "id"}, codes.AlreadyExists},
		{fmt.Errorf("x: %w", sandbox.ErrNotFound), codes.NotFound},
		{&sandbox.StepError{Step: sandbox.StepNetwork, Err: errors.New("plugin failed")}, codes.Internal},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{status.Error(codes.Unavailable, "as it was"), codes.Unavailable},
	} {
		err := cri.Error(c.err)
		assert.Equal(t, c.code, status.Code(err), "%v", c.err)
		assert.Contains(t, c.err.Error(), status.Convert(err).Message())
	}
	assert.NoError(t, cri.Error(nil))
	msg := status.Convert(cri.Error(&sandbox.StepError{Step: sandbox.StepNetwork, Err: errors.New("plugin failed")})).Message()
	assert.Contains(t, msg, "step network")
}

func TestResolveID(t *testing.T) {
	ids := []string{"abc1", "abc2", "def"}
	for ref, want := range map[string]string{"abc1": "abc1", "d": "def", "abc": "", "x": "", "": ""} {
		got, ok := cri.ResolveID(ids, ref)
		assert.Equal(t, want, got, ref)
		assert.Equal(t, want != "", ok, ref)
	}
}

// Any message a client can send converts without a panic, and what
// converts, the Builder plans or refuses with a ConfigError.
func FuzzConfig(f *testing.F) {
	b, err := proto.Marshal(fullRequest())
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte{})
	resolv := filepath.Join(f.TempDir(), "resolv.conf")
	require.NoError(f, os.WriteFile(resolv, []byte("nameserver 192.0.2.53\n"), 0o644))
	dir := f.TempDir()
	bl, err := sandbox.NewBuilder(sandbox.Options{StateDir: dir + "/state", RunDir: dir + "/run", HostResolvConf: resolv})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req runtime.RunPodSandboxRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		cfg, err := cri.Config(&req)
		if err != nil {
			var ue *cri.UnsupportedError
			require.ErrorAs(t, err, &ue)
			return
		}
		if _, err := bl.Plan(cfg); err != nil {
			require.ErrorIs(t, err, sandbox.ErrInvalidConfig)
		}
	})
}
