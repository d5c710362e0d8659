package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/spec"
)

// ErrUserNamespace is matched by a *UserNamespaceError.
var ErrUserNamespace = errors.New("sandbox: user namespace refused")

// UserNamespaceError is why a pod's user namespace request
// (namespace_options.userns_options) cannot be given; it is the Err of the
// config Problem at its field path, and matches ErrInvalidConfig too.
type UserNamespaceError struct {
	Reason string
}

func (e *UserNamespaceError) Error() string { return "user namespace: " + e.Reason }

// Is makes a UserNamespaceError match ErrUserNamespace and ErrInvalidConfig.
func (e *UserNamespaceError) Is(target error) bool {
	return target == ErrUserNamespace || target == ErrInvalidConfig
}

// idSpace is one past the largest 32-bit ID.
const idSpace = 1 << 32

// userNamespace checks the pod's user namespace request and returns its
// mappings (nil for none: no options, or mode NODE). Every rule is a
// problem at its field path, before anything is made.
func (b *Builder) userNamespace(p *plan, probs *problems) (uids, gids []specs.LinuxIDMapping) {
	ns := p.Config.Namespaces()
	u := ns.UsernsOptions
	if u == nil {
		return nil, nil
	}
	const f = "linux.security_context.namespace_options.userns_options"
	bad := func(field, format string, args ...any) {
		e := &UserNamespaceError{Reason: fmt.Sprintf(format, args...)}
		probs.add(field, e.Reason, e)
	}
	switch u.Mode {
	case pod.NamespaceNode:
		if len(u.Uids) > 0 || len(u.Gids) > 0 {
			bad(f+".mode", "NODE (the node's user namespace) takes no mappings; a pod's own is POD")
		}
		return nil, nil
	case pod.NamespacePod:
	default:
		bad(f+".mode", "%s: a pod's user namespace is NODE (2) or POD (0); CONTAINER and TARGET are for containers", u.Mode)
		return nil, nil
	}
	for _, shared := range []struct {
		field string
		mode  pod.NamespaceMode
	}{{"network", ns.Network}, {"pid", ns.Pid}, {"ipc", ns.Ipc}} {
		if shared.mode == pod.NamespaceNode {
			bad(f+".mode", "POD with the node's %s namespace: a pod in a user namespace of its own shares none with the node", shared.field)
		}
	}
	if p.NoPause {
		bad(f+".mode", "POD in a pod without a pause (Options.PauseMode): its namespaces would be the node's user namespace's")
	}
	check := func(field string, ms []pod.IDMapping) []specs.LinuxIDMapping {
		if len(ms) != 1 {
			bad(field, "%d mappings: a pod's user namespace has exactly one", len(ms))
			return nil
		}
		m := ms[0]
		at := field + "[0]"
		ok := true
		if m.ContainerID != 0 {
			bad(at+".container_id", "%d: the mapping must start at ID 0, the pod's root", m.ContainerID)
			ok = false
		}
		if m.Length == 0 {
			bad(at+".length", "0: a mapping maps at least one ID")
			ok = false
		}
		// The kernel refuses ID 2³²-1 (it is -1) and a range that ends
		// at 2³².
		if uint64(m.HostID)+uint64(m.Length) >= idSpace || uint64(m.ContainerID)+uint64(m.Length) >= idSpace {
			bad(at+".length", "%d IDs from %d: past the largest ID, %d", m.Length, m.HostID, uint32(idSpace-2))
			ok = false
		}
		if m.HostID == 0 && !b.opts.UserNSHostRoot {
			bad(at+".host_id", "0: the range maps the node's root into the pod (Options.UserNSHostRoot allows it)")
			ok = false
		}
		if !ok {
			return nil
		}
		return specMapping(m)
	}
	uids, gids = check(f+".uids", u.Uids), check(f+".gids", u.Gids)
	if uids == nil || gids == nil {
		return nil, nil
	}
	// net.ipv4.ping_group_range takes GIDs of the pod's user namespace:
	// unmapped ones are EINVAL in the runtime, late (cri-o#4476). The
	// pod's own value, or the node's default (Options.DefaultSysctls).
	const pgr = "net.ipv4.ping_group_range"
	if v, ok := p.sysctls[pgr]; ok {
		field := p.sysctlField(pgr)
		lo, hi, ok := gidRange(v)
		switch {
		case !ok:
			bad(field, "%q: in a user namespace, two decimal GIDs", v)
		case lo >= uint64(gids[0].Size) || hi >= uint64(gids[0].Size):
			bad(field, "%q: GIDs %d-%d, but the pod's user namespace maps GIDs 0-%d only", v, lo, hi, gids[0].Size-1)
		}
	}
	return uids, gids
}

// specMapping is a CRI mapping as the OCI spec has it.
func specMapping(m pod.IDMapping) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{HostID: m.HostID, ContainerID: m.ContainerID, Size: m.Length}}
}

// gidRange parses ping_group_range's "low high", in decimal.
func gidRange(v string) (lo, hi uint64, ok bool) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 32)
	hi, err2 := strconv.ParseUint(f[1], 10, 32)
	return lo, hi, err1 == nil && err2 == nil
}

// userns: the pod's user namespace, owning its netns (both pinned by the
// netns step), and the pause as the namespace's root.
func (b *Builder) userns(p *plan, probs *problems) []spec.Opt {
	uids, gids := b.userNamespace(p, probs)
	if uids == nil {
		return nil
	}
	p.uids, p.gids = uids, gids
	p.UserNSPath = filepath.Join(p.BundleDir, "userns")
	// The pause runs as its user and group (spec.PauseUID and PauseGID,
	// or the pod's run_as_user and run_as_group) in the namespace if the
	// mappings map them, else as the pod's root; what the pod asks for
	// must be mapped, supplemental groups included.
	sc := p.Config.Security()
	const sf = "linux.security_context."
	id := func(field string, v *pod.Int64Value, def int64, size uint32) (uint32, bool) {
		n := def
		if v != nil {
			n = v.Value
		}
		switch {
		case n >= 0 && n < int64(size):
			return uint32(n), false
		case v != nil:
			e := &UserNamespaceError{Reason: fmt.Sprintf("%d is not mapped in the pod's user namespace (IDs 0-%d)", n, size-1)}
			probs.add(sf+field, e.Reason, e)
			return 0, false
		}
		return 0, true // the default, unmapped: the pod's root instead
	}
	user, uFell := id("run_as_user.value", sc.RunAsUser, spec.PauseUID, uids[0].Size)
	group, gFell := id("run_as_group.value", sc.RunAsGroup, spec.PauseGID, gids[0].Size)
	var groups []uint32
	for i, g := range sc.SupplementalGroups {
		if g < 0 || g >= int64(gids[0].Size) {
			e := &UserNamespaceError{Reason: fmt.Sprintf("%d is not mapped in the pod's user namespace (GIDs 0-%d)", g, gids[0].Size-1)}
			probs.add(fmt.Sprintf(sf+"supplemental_groups[%d]", i), e.Reason, e)
			continue
		}
		groups = append(groups, uint32(g))
	}
	opts := []spec.Opt{spec.WithUserNamespace(p.UserNSPath, uids, gids)}
	if uFell || gFell {
		opts = append(opts, spec.WithUser(user, group, groups...))
	}
	return opts
}

// searchable checks that every directory from dir up to / lets others
// search it, as the root of a pod's user namespace, an unprivileged user
// of the node, must.
func searchable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is mode %04o: the root of a pod's user namespace, an unprivileged user of the node, cannot reach its bundle (make the run dir and its parents searchable by others, o+x)", d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// owner is the host IDs of the pod's root: the owner of what the pod's
// root must own (its shm tmpfs); nil without a user namespace.
func (p *plan) owner() *Owner {
	if p.uids == nil {
		return nil
	}
	return &Owner{UID: p.uids[0].HostID, GID: p.gids[0].HostID}
}
