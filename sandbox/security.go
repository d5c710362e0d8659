package sandbox

import (
	"fmt"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"

	"github.com/podsmith/podsmith/pod"
	"github.com/podsmith/podsmith/spec"
)

// security: the pause's user, capabilities, seccomp profile, OOM score,
// AppArmor (none applied) and SELinux labels.
func (b *Builder) security(p *plan, probs *problems) []spec.Opt {
	sc := p.Config.Security()
	user, group := uint32(spec.PauseUID), uint32(spec.PauseGID)
	const f = "linux.security_context."
	if sc.RunAsUser != nil {
		user = checkID(probs, f+"run_as_user.value", sc.RunAsUser.Value)
	}
	if sc.RunAsGroup != nil {
		group = checkID(probs, f+"run_as_group.value", sc.RunAsGroup.Value)
	}
	var groups []uint32
	for i, g := range sc.SupplementalGroups {
		groups = append(groups, checkID(probs, fmt.Sprintf(f+"supplemental_groups[%d]", i), g))
	}
	if sc.Apparmor != nil {
		switch sc.Apparmor.ProfileType {
		case pod.ProfileRuntimeDefault, pod.ProfileUnconfined:
		case pod.ProfileLocalhost:
			probs.addf(f+"apparmor", "Localhost AppArmor profiles are not supported (podsmith applies none to the pause process)")
		default:
			probs.addf(f+"apparmor.profile_type", "%s is not a profile type", sc.Apparmor.ProfileType)
		}
	}
	p.processLabel = b.selinuxLabels(p, sc.SelinuxOptions, probs)
	opts := []spec.Opt{
		spec.WithRoot(spec.BundleRootfs, true),
		spec.WithArgs(b.pauseArgs...),
		spec.WithOCIVersion(b.opts.OCIVersion),
		spec.WithOOMScoreAdj(b.oomScore),
		spec.WithUser(user, group, groups...),
		spec.WithSeccomp(b.seccompProfile(p.privileged, sc, probs)),
		spec.WithSELinuxLabels(p.processLabel, p.mountLabel),
	}
	if p.privileged {
		opts = append(opts, spec.WithPrivileged(b.hostCaps))
	}
	return opts
}

func checkID(probs *problems, field string, v int64) uint32 {
	if v < 0 || v > maxID {
		probs.addf(field, "%d is not a user or group ID (0-%d)", v, maxID)
		return 0
	}
	return uint32(v)
}

// seccompProfile resolves the pod's seccomp settings (the seccomp field
// wins over the deprecated seccomp_profile_path, as in containerd). The
// RuntimeDefault profile is copied: no two plans share one.
func (b *Builder) seccompProfile(privileged bool, sc *pod.SecurityContext, probs *problems) *specs.LinuxSeccomp {
	if privileged {
		return nil
	}
	typ, ref, field := b.opts.Seccomp.Unset, "", "linux.security_context.seccomp"
	switch {
	case sc.Seccomp != nil:
		typ, ref = sc.Seccomp.ProfileType, sc.Seccomp.LocalhostRef
	case sc.SeccompProfilePath != "":
		field = "linux.security_context.seccomp_profile_path"
		switch path := sc.SeccompProfilePath; {
		case path == "runtime/default" || path == "docker/default":
			typ = pod.ProfileRuntimeDefault
		case path == "unconfined":
			typ = pod.ProfileUnconfined
		case strings.HasPrefix(path, "localhost/"):
			typ, ref = pod.ProfileLocalhost, strings.TrimPrefix(path, "localhost/")
		default:
			probs.addf(field, "%q is not runtime/default, docker/default, unconfined or localhost/<path>", truncate(path))
			return nil
		}
	}
	switch typ {
	case pod.ProfileRuntimeDefault:
		return spec.CopySeccompProfile(b.opts.Seccomp.RuntimeDefault)
	case pod.ProfileUnconfined:
		return nil
	case pod.ProfileLocalhost:
		if field == "linux.security_context.seccomp" {
			field += ".localhost_ref"
		}
		prof, err := spec.LoadSeccompProfile(ref)
		if err != nil {
			probs.add(field, describe(err), err)
		}
		return prof
	}
	probs.addf(field+".profile_type", "%s is not a profile type", typ)
	return nil
}

// selinuxLabels computes the pause's process label and the sandbox's mount
// label (stored in p). They are empty unless Options.SELinux is set and the
// host enforces SELinux, and for privileged, host-PID and host-IPC pods.
func (b *Builder) selinuxLabels(p *plan, o *pod.SELinuxOptions, probs *problems) string {
	var opts []string
	if o != nil {
		for _, kv := range [][2]string{{"user", o.User}, {"role", o.Role}, {"type", o.Type}, {"level", o.Level}} {
			if strings.ContainsFunc(kv[1], func(r rune) bool { return r < 0x21 || r == 0x7f }) {
				probs.addf("linux.security_context.selinux_options."+kv[0], "contains whitespace or a control character")
			}
			if kv[1] != "" {
				opts = append(opts, kv[0]+":"+kv[1])
			}
		}
	}
	if !b.opts.SELinux || !selinux.GetEnabled() || p.privileged || p.hostPID || p.hostIPC {
		return ""
	}
	process, mount, err := label.InitLabels(opts)
	if err != nil {
		probs.add("linux.security_context.selinux_options", err.Error(), err)
		return ""
	}
	p.mountLabel = mount
	return process
}
