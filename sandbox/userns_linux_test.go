package sandbox_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/podsmith/podsmith/internal/testutil"
	"github.com/podsmith/podsmith/netns"
	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/sandbox"
)

// nsGetUserNS is NS_GET_USERNS from linux/nsfs.h: _IO(0xb7, 0x1).
const nsGetUserNS = 0xb701

// ownerInode returns the inode of the user namespace that owns the
// namespace file at path.
func ownerInode(t *testing.T, path string) uint64 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	owner, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetUserNS, 0)
	require.Zero(t, errno, "NS_GET_USERNS")
	defer unix.Close(int(owner))
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(int(owner), &st))
	return st.Ino
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st))
	return st.Ino
}

// TestUserNamespace builds pods in a user namespace of their own, with a
// CNI network, started by runc and by crun, and checks from the host and
// from a container in the pod what the pod's root is and may do.
func TestUserNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinaries(t, "nsenter")
	for _, runtime := range []string{"runc", "crun"} {
		t.Run(runtime, func(t *testing.T) {
			f := newJoinFixture(t, runtime, sandbox.PauseAlways)
			searchableFrom(t, f.root)
			searchableFrom(t, f.rootfs)
			ctx := context.Background()
			sb, err := f.b.Build(ctx, usernsPod("userns"))
			require.NoError(t, err)
			t.Cleanup(func() { _ = sb.Destroy(ctx) })
			pid := sb.PausePid
			require.Positive(t, pid)
			f.lc.TrackProcess(pid)
			for _, p := range f.net.Ports() {
				f.lc.TrackLink(p)
			}
			proc := fmt.Sprintf("/proc/%d/", pid)

			// The pause runs as its user (65535) of the namespace: host
			// ID usernsHostID+65535, unprivileged on the node.
			status, err := os.ReadFile(proc + "status")
			require.NoError(t, err)
			want := fmt.Sprint(usernsHostID + 65535)
			assert.Contains(t, string(status), "\nUid:\t"+want+"\t"+want+"\t"+want+"\t"+want+"\n")
			assert.Contains(t, string(status), "\nGid:\t"+want+"\t"+want+"\t"+want+"\t"+want+"\n")
			for _, m := range []string{"uid_map", "gid_map"} {
				b, err := os.ReadFile(proc + m)
				require.NoError(t, err)
				assert.Equal(t, []string{"0", fmt.Sprint(usernsHostID), "65536"}, strings.Fields(string(b)), m)
			}

			// The pinned user namespace is the pause's, and owns the
			// pod's netns (and the pause's, the same).
			assert.Equal(t, inodeOf(t, proc+"ns/user"), inodeOf(t, sb.UserNSPath))
			assert.Equal(t, inodeOf(t, proc+"ns/net"), inodeOf(t, sb.NetnsPath))
			assert.Equal(t, inodeOf(t, proc+"ns/user"), ownerInode(t, sb.NetnsPath), "NS_GET_USERNS of the netns")
			assert.NotEqual(t, inodeOf(t, "/proc/self/ns/user"), inodeOf(t, sb.UserNSPath))

			// eth0 has the pod's IP, inside the user-owned netns.
			require.Len(t, sb.IPs, 1)
			ns, err := netns.Open(sb.NetnsPath)
			require.NoError(t, err)
			var addrs []string
			require.NoError(t, ns.Do(func() error {
				ifc, err := net.InterfaceByName("eth0")
				if err != nil {
					return err
				}
				as, err := ifc.Addrs()
				for _, a := range as {
					addrs = append(addrs, a.String())
				}
				return err
			}))
			assert.Contains(t, addrs, sb.IPs[0].String()+"/24")

			// The pod's root (nsenter into its user namespace as 0) makes a
			// file in the pod's /dev/shm, owned by it, and reads
			// resolv.conf inside.
			nsenter := func(args ...string) (string, error) {
				out, err := exec.Command("nsenter", append([]string{"-t", fmt.Sprint(pid), "-U", "-S", "0", "-G", "0", "--"}, args...)...).CombinedOutput()
				return string(out), err
			}
			out, err := nsenter("touch", proc+"root/dev/shm/by-pod-root")
			require.NoError(t, err, out)
			st, err := os.Stat(filepath.Join(sb.Files.Shm, "by-pod-root"))
			require.NoError(t, err)
			assert.Equal(t, uint32(usernsHostID), st.Sys().(*syscall.Stat_t).Uid)
			shm, err := os.Stat(sb.Files.Shm)
			require.NoError(t, err)
			assert.Equal(t, uint32(usernsHostID), shm.Sys().(*syscall.Stat_t).Uid, "the shm tmpfs is the pod root's")
			out, err = nsenter("cat", proc+"root/etc/resolv.conf")
			require.NoError(t, err, out)
			assert.Equal(t, "nameserver 192.0.2.53\n", out)
			// ...and is nobody on the node: the node's files stay shut.
			out, err = nsenter("touch", "/etc/podsmith-userns-test")
			require.Error(t, err, out)
			assert.NoFileExists(t, "/etc/podsmith-userns-test")

			// A container in the pod shares its user namespace.
			assert.Equal(t, "0 "+fmt.Sprint(usernsHostID)+" 65536\nuserns\nnameserver 192.0.2.53\n",
				f.run(t, sb, pod.NamespacePod, `awk '{print $1, $2, $3}' /proc/self/uid_map; hostname; cat /etc/resolv.conf`))

			require.NoError(t, sb.Stop(ctx))
			require.NoError(t, sb.Destroy(ctx))
			assert.NoFileExists(t, sb.UserNSPath)
			assert.Empty(t, f.net.Allocations())
			assert.Empty(t, f.lc.Leaked())
		})
	}
}

// Every refused user namespace request is a typed error at its field
// path, and nothing is built.
func TestUserNamespaceRefused(t *testing.T) {
	b, lc := realBuilder(t, sandbox.Options{})
	ok := pod.IDMapping{HostID: usernsHostID, Length: 65536}
	for name, c := range map[string]struct {
		mod   func(*pod.Config, *pod.UserNamespace)
		field string
	}{
		"two mappings": {func(_ *pod.Config, u *pod.UserNamespace) {
			u.Uids = append(u.Uids, pod.IDMapping{HostID: 2000, Length: 100000})
		}, ".userns_options.uids"},
		"no gid mapping":     {func(_ *pod.Config, u *pod.UserNamespace) { u.Gids = nil }, ".userns_options.gids"},
		"container ID 1":     {func(_ *pod.Config, u *pod.UserNamespace) { u.Uids[0].ContainerID = 1 }, ".userns_options.uids[0].container_id"},
		"length 0":           {func(_ *pod.Config, u *pod.UserNamespace) { u.Gids[0].Length = 0 }, ".userns_options.gids[0].length"},
		"overflow":           {func(_ *pod.Config, u *pod.UserNamespace) { u.Uids[0].HostID = 1<<32 - 10 }, ".userns_options.uids[0].length"},
		"host root":          {func(_ *pod.Config, u *pod.UserNamespace) { u.Uids[0].HostID = 0 }, ".userns_options.uids[0].host_id"},
		"CONTAINER":          {func(_ *pod.Config, u *pod.UserNamespace) { u.Mode = pod.NamespaceContainer }, ".userns_options.mode"},
		"TARGET":             {func(_ *pod.Config, u *pod.UserNamespace) { u.Mode = pod.NamespaceTarget }, ".userns_options.mode"},
		"NODE with mappings": {func(_ *pod.Config, u *pod.UserNamespace) { u.Mode = pod.NamespaceNode }, ".userns_options.mode"},
		"host network": {func(c *pod.Config, _ *pod.UserNamespace) {
			c.Hostname = ""
			c.Linux.SecurityContext.NamespaceOptions.Network = pod.NamespaceNode
		}, ".userns_options.mode"},
		"host PID": {func(c *pod.Config, _ *pod.UserNamespace) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = pod.NamespaceNode
		}, ".userns_options.mode"},
		"host IPC": {func(c *pod.Config, _ *pod.UserNamespace) {
			c.Linux.SecurityContext.NamespaceOptions.Ipc = pod.NamespaceNode
		}, ".userns_options.mode"},
		"ping_group_range": {func(c *pod.Config, _ *pod.UserNamespace) {
			c.Linux.Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 2147483647"}
		}, `linux.sysctls["net.ipv4.ping_group_range"]`},
		"run_as_user unmapped": {func(c *pod.Config, _ *pod.UserNamespace) {
			c.Linux.SecurityContext.RunAsUser = &pod.Int64Value{Value: 70000}
		}, "linux.security_context.run_as_user.value"},
		"supplemental group unmapped": {func(c *pod.Config, _ *pod.UserNamespace) {
			c.Linux.SecurityContext.SupplementalGroups = []int64{5, 70000}
		}, "linux.security_context.supplemental_groups[1]"},
		"ping_group_range in hex": {func(c *pod.Config, _ *pod.UserNamespace) {
			c.Linux.Sysctls = map[string]string{"net/ipv4/ping_group_range": "0 0x7fff"}
		}, `linux.sysctls["net/ipv4/ping_group_range"]`},
		"range ending at 2^32": {func(_ *pod.Config, u *pod.UserNamespace) { u.Uids[0].HostID, u.Uids[0].Length = 1, 1<<32-1 }, ".userns_options.uids[0].length"},
		"ID 2^32-1":            {func(_ *pod.Config, u *pod.UserNamespace) { u.Gids[0].HostID, u.Gids[0].Length = 1<<32-1, 1 }, ".userns_options.gids[0].length"},
	} {
		cfg := usernsPod("refused")
		u := cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions
		u.Uids, u.Gids = []pod.IDMapping{ok}, []pod.IDMapping{ok}
		c.mod(cfg, u)
		_, err := b.Build(context.Background(), cfg)
		var ce *sandbox.ConfigError
		require.ErrorAs(t, err, &ce, name)
		require.ErrorIs(t, err, sandbox.ErrUserNamespace, name)
		field := c.field
		if strings.HasPrefix(field, ".") {
			field = "linux.security_context.namespace_options" + field
		}
		var fields []string
		for _, p := range ce.Problems {
			fields = append(fields, p.Field)
		}
		assert.Contains(t, fields, field, name)
	}
	// A run dir the pod's root cannot reach (t.TempDir's are 0700):
	// refused at the dirs step, with what to do, and nothing is left.
	_, err := b.Build(context.Background(), usernsPod("unreachable"))
	var se *sandbox.StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, sandbox.StepDirs, se.Step)
	assert.Contains(t, err.Error(), "o+x")
	require.NoError(t, se.RollbackErr)

	// A small range maps no user 65535: the pause runs as the pod's root;
	// a run_as_user it maps is kept, with the root group.
	cfg := usernsPod("small")
	small := []pod.IDMapping{{HostID: usernsHostID, Length: 1000}}
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Uids = small
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Gids = small
	p, err := b.Plan(cfg)
	require.NoError(t, err)
	assert.Equal(t, specs.User{}, p.Spec.Process.User)
	cfg.Linux.SecurityContext.RunAsUser = &pod.Int64Value{Value: 5}
	p, err = b.Plan(cfg)
	require.NoError(t, err)
	assert.Equal(t, specs.User{UID: 5}, p.Spec.Process.User)

	// The node's default ping_group_range is checked too, at its option.
	withDefault, err := sandbox.NewBuilder(func() sandbox.Options {
		o := b.Options()
		o.DefaultSysctls = map[string]string{"net.ipv4.ping_group_range": "0 2147483647"}
		return o
	}())
	require.NoError(t, err)
	_, err = withDefault.Plan(usernsPod("default-sysctl"))
	var ce *sandbox.ConfigError
	require.ErrorAs(t, err, &ce)
	require.ErrorIs(t, err, sandbox.ErrUserNamespace)
	assert.Equal(t, "Options.DefaultSysctls", ce.Problems[0].Field)
	assert.Empty(t, lc.Leaked())
}
