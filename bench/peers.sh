#!/usr/bin/env bash
# Peers for podsmith's CRI benchmark (make bench-peers): containerd 1.6
# (Debian's package) and containerd 2.4.2 (built from the Go module proxy),
# each with its own config, root, state, sockets, runc root, CNI conf dir,
# bridge and subnet, never the system's (/etc/containerd, /run/containerd,
# /var/lib/containerd are not used). See bench/README.md.
#
#   peers.sh setup            packages, builds (cached), pause image, configs
#   peers.sh start cd16|cd24  start that peer's containerd, import the pause image
#   peers.sh stop cd16|cd24   remove its pods, stop it, remove all it left behind
#   peers.sh bench            the whole benchmark (what make bench-peers runs)
#   peers.sh cleanup          stop everything, remove the work dir
#   peers.sh purge            cleanup, then remove the build cache too
#   peers.sh status           what of ours is running or left
#
# Environment:
#   PODSMITH_PEERS_CACHE  build cache (default /var/cache/podsmith/peers)
#   PODSMITH_BENCH_DIR    work dir (default /var/lib/podsmith-bench): configs,
#                         roots, state, sockets, logs; removed by cleanup
#   bench only: CRIBENCH (the cribench binary), BENCH_ITERATIONS (30),
#   BENCH_CONCURRENCY (1,4), BENCH_NETWORKS (pod,host), BENCH_MEMORY_PODS (20),
#   BENCH_REF (containerd-2.4), BENCH_RESULTS (results, default $CACHE/results),
#   PODSMITH_SHIM_CMD, PODSMITH_SHIM_SOCK (podsmith's CRI shim; skipped when
#   the command's binary is missing), BENCH_LOCK_WAIT (seconds, 3600).
set -eEuo pipefail
umask 022
trap 'echo "peers: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

SELF=$(readlink -f "$0")
CACHE=${PODSMITH_PEERS_CACHE:-/var/cache/podsmith/peers}
W=${PODSMITH_BENCH_DIR:-/var/lib/podsmith-bench}
CD24_VERSION=v2.4.2
CRICTL_VERSION=v1.37.0
CD24_BIN=$CACHE/containerd-$CD24_VERSION/bin
CRICTL=$CACHE/crictl-$CRICTL_VERSION/bin/crictl
PAUSE_TAR=$CACHE/pause-catatonit.tar
PAUSE_IMAGE=localhost/podsmith-bench/pause:catatonit
RUNC=/usr/sbin/runc
CNI_BIN=/usr/lib/cni
# Held for the whole bench: podsmith's CNI tests take it too (they also
# turn ip_forward on and put it back, and share portmap's chains).
CNI_LOCK=/run/lock/podsmith-cni-tests.lock
# Per system: bridge, subnet (test-only addresses). pbk = podsmith bench.
declare -A BRIDGE=([cd16]=pbk-cd16 [cd24]=pbk-cd24 [ps]=pbk-ps)
declare -A SUBNET=([cd16]=10.199.216.0/24 [cd24]=10.199.224.0/24 [ps]=10.199.232.0/24)

say() { printf 'peers: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root"; }

peer_ok() {
	case "${1:-}" in cd16 | cd24) ;; *) die "peer is cd16 or cd24, not '${1:-}'" ;; esac
}

# --- setup -------------------------------------------------------------------

# go_env <cmd>: the Go toolchain with its caches in ours ("go: downloading"
# lines dropped).
go_env() {
	env GOPATH="$CACHE/go" GOCACHE="$CACHE/go/cache" GOMODCACHE="$CACHE/go/pkg/mod" \
		GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=1 "$@" 2> >(grep -v '^go: downloading' >&2 || true)
}

install_containerd16() {
	if dpkg-query -W -f='${Status}' containerd 2>/dev/null | grep '^install ok installed$' >/dev/null; then
		return
	fi
	local systemd=0 was_active=inactive
	if [ -d /run/systemd/system ]; then
		systemd=1
		was_active=$(systemctl is-active containerd 2>/dev/null || true)
	fi
	say "installing Debian's containerd"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd >/dev/null
	# The package enables containerd.service; on a systemd host it also
	# starts it. Stop and disable it only if the install started it.
	if [ $systemd = 1 ] && [ "$was_active" != active ] &&
		[ "$(systemctl is-active containerd 2>/dev/null || true)" = active ]; then
		say "the package started the system's containerd.service: stopping and disabling it"
		systemctl stop containerd
		systemctl disable containerd
		echo "containerd.service was started by apt-get install containerd; stopped and disabled on $(date -Is)" >"$CACHE/NOTE-containerd.service"
	fi
}

build_containerd24() {
	if [ -x "$CD24_BIN/containerd" ] && [ -x "$CD24_BIN/containerd-shim-runc-v2" ] && [ -x "$CD24_BIN/ctr" ] &&
		"$CD24_BIN/containerd" --version 2>/dev/null | grep " ${CD24_VERSION#v}" >/dev/null; then
		return
	fi
	say "building containerd $CD24_VERSION from the Go module proxy (about 4 minutes)"
	local tmp=$CACHE/containerd-$CD24_VERSION/bin.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(cd / && go_env GOBIN="$tmp" go install -tags "no_btrfs no_devmapper no_zfs" \
		"github.com/containerd/containerd/v2/cmd/containerd@$CD24_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CD24_VERSION" \
		"github.com/containerd/containerd/v2/cmd/ctr@$CD24_VERSION")
	rm -rf "$CD24_BIN"
	mv "$tmp" "$CD24_BIN"
}

build_crictl() {
	[ -x "$CRICTL" ] && return
	say "building crictl $CRICTL_VERSION"
	local tmp=$CACHE/crictl-$CRICTL_VERSION/bin.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(cd / && go_env GOBIN="$tmp" go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION")
	rm -rf "$(dirname "$CRICTL")"
	mv "$tmp" "$(dirname "$CRICTL")"
}

# The pause image, as an OCI image layout (no registry is reachable): one
# uncompressed layer with /pause = the host's static catatonit, run as
# "/pause -P" (catatonit's pause mode). Rebuilt when catatonit changes.
build_pause_image() {
	local cat=/usr/bin/catatonit sum
	[ -x $cat ] || die "$cat missing (Debian package catatonit)"
	file -L $cat | grep 'statically linked' >/dev/null || die "$cat is not statically linked: it cannot be a pause image alone"
	sum=$(sha256sum $cat | cut -d' ' -f1)
	if [ -f "$PAUSE_TAR" ] && [ "$(cat "$PAUSE_TAR.catatonit-sha256" 2>/dev/null)" = "$sum" ]; then
		return
	fi
	say "building the pause image $PAUSE_IMAGE from $cat"
	local d
	d=$(mktemp -d "$CACHE/pause.XXXXXX")
	mkdir -p "$d/rootfs" "$d/oci/blobs/sha256"
	install -m 0755 $cat "$d/rootfs/pause"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$d/rootfs" -cf "$d/layer.tar" pause
	local ldig lsz cdig csz mdig msz
	ldig=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
	lsz=$(stat -c %s "$d/layer.tar")
	mv "$d/layer.tar" "$d/oci/blobs/sha256/$ldig"
	cat >"$d/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":["/pause","-P"],"WorkingDir":"/","User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:$ldig"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"COPY /usr/bin/catatonit /pause"}]}
EOF
	cdig=$(sha256sum "$d/config.json" | cut -d' ' -f1)
	csz=$(stat -c %s "$d/config.json")
	mv "$d/config.json" "$d/oci/blobs/sha256/$cdig"
	cat >"$d/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$cdig","size":$csz},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$ldig","size":$lsz}]}
EOF
	mdig=$(sha256sum "$d/manifest.json" | cut -d' ' -f1)
	msz=$(stat -c %s "$d/manifest.json")
	mv "$d/manifest.json" "$d/oci/blobs/sha256/$mdig"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci/oci-layout"
	cat >"$d/oci/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$mdig","size":$msz,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"$PAUSE_IMAGE","org.opencontainers.image.ref.name":"catatonit"}}]}
EOF
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$d/oci" -cf "$PAUSE_TAR.tmp" oci-layout index.json blobs
	mv "$PAUSE_TAR.tmp" "$PAUSE_TAR"
	echo "$sum" >"$PAUSE_TAR.catatonit-sha256"
	rm -rf "$d"
}

# cni_conf <system> <dir>: bridge + host-local + portmap. isGateway (so the
# pod gets a default route, as on a node; it turns ip_forward on, which
# the bench puts back), no ipMasq: nothing is NATed off the host.
cni_conf() {
	local s=$1 dir=$2
	mkdir -p "$dir" "$W/$s/ipam"
	cat >"$dir/10-${BRIDGE[$s]}.conflist" <<EOF
{"cniVersion":"0.4.0","name":"${BRIDGE[$s]}","plugins":[
 {"type":"bridge","bridge":"${BRIDGE[$s]}","isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","dataDir":"$W/$s/ipam","ranges":[[{"subnet":"${SUBNET[$s]}"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
EOF
}

# containerd 1.6 (config version 2; the CRI plugin is one section).
config_cd16() {
	local d=$W/cd16
	mkdir -p "$d"
	cni_conf cd16 "$d/net.d"
	cat >"$d/config.toml" <<EOF
# containerd 1.6 for podsmith's bench (peers.sh). It runs in a mount
# namespace of its own where /run/containerd is $d/run:
# 1.6 puts its shims' sockets in /run/containerd/s, whatever the config.
version = 2
root = "$d/root"
state = "$d/state"
imports = []
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: the sandbox's oom_score_adj -998 cannot be
  # set; restrict clamps it to containerd's own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "/usr/bin/containerd-shim-runc-v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        Root = "$d/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$d/net.d"
    max_conf_num = 1
EOF
}

# containerd 2.4 (config version 4, as "containerd config default" prints:
# the CRI plugin is split in io.containerd.cri.v1.images / .runtime and
# io.containerd.grpc.v1.cri; the servers' addresses are plugins' settings).
config_cd24() {
	local d=$W/cd24
	mkdir -p "$d"
	cni_conf cd24 "$d/net.d"
	cat >"$d/config.toml" <<EOF
# containerd 2.4 for podsmith's bench (peers.sh).
version = 4
root = "$d/root"
state = "$d/state"
imports = []
[plugins."io.containerd.server.v1.grpc"]
  address = "$d/containerd.sock"
[plugins."io.containerd.server.v1.ttrpc"]
  address = "$d/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "$d/opt/image-verifier"
# NRI is on by default in 2.x, with a socket in /var/run/nri.
[plugins."io.containerd.nri.v1.nri"]
  disable = true
# The shims' sockets (the default is /run/containerd/s; at most 42 chars).
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$d/s"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = ["$d/cdi"]
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "$CD24_BIN/containerd-shim-runc-v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        Root = "$d/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$CNI_BIN"]
    conf_dir = "$d/net.d"
    max_conf_num = 1
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
EOF
	local sd=$d/s
	[ ${#sd} -le 42 ] || die "containerd 2.4's shim socket dir $sd is longer than 42 characters: choose a shorter PODSMITH_BENCH_DIR"
}

cmd_setup() {
	need_root
	local t0=$SECONDS
	mkdir -p "$CACHE" "$W"
	for c in go file iptables iptables-save ip unshare flock findmnt; do
		command -v $c >/dev/null || die "$c not found"
	done
	for p in bridge host-local portmap loopback; do
		[ -x $CNI_BIN/$p ] || die "CNI plugin $CNI_BIN/$p missing (Debian package containernetworking-plugins)"
	done
	[ -x $RUNC ] || die "$RUNC missing (Debian package runc)"
	install_containerd16
	build_containerd24
	build_crictl
	# The Go caches (about 1.6 GB) only serve a rebuild: the binaries stay.
	if [ -d "$CACHE/go" ]; then
		go_env go clean -cache -modcache
		rm -rf "${CACHE:?}/go"
	fi
	build_pause_image
	config_cd16
	config_cd24
	say "setup done in $((SECONDS - t0)) s (cache $CACHE, work dir $W)"
}

# --- process helpers -----------------------------------------------------------

alive() { [ -n "${1:-}" ] && [ -e "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# pidfile_pid <file> <expected cmdline fragment>: the pid in the file if
# that process still runs and its command line has the fragment (so a
# reused pid is never taken for ours).
pidfile_pid() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	alive "$pid" || return 1
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -F -- "$2" >/dev/null || return 1
	echo "$pid"
}

# kill_wait <pid>...: SIGTERM, then SIGKILL after 10 s.
kill_wait() {
	local p left
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null || true
	for _ in $(seq 100); do
		left=
		for p; do alive "$p" && left=1; done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	for p; do alive "$p" && kill -KILL "$p" 2>/dev/null || true; done
	for _ in $(seq 50); do
		left=
		for p; do alive "$p" && left=1; done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
}

# our_procs <system>: processes that belong to that system's run here: the
# shims started for our daemon (their -address is our socket), containerd
# processes in our 1.6 mount namespace, and any process whose root or cwd
# is in the system's dir (pause processes, even orphaned; a shim's cwd is
# its bundle). Never this script or its callers.
our_procs() {
	local s=$1 d=$W/$1 pid cmd root cwd mntns= sock=$W/$1/containerd.sock p
	local -A mine=()
	[ "$s" = ps ] && sock=${PODSMITH_SHIM_SOCK:-$W/crishim.sock}
	[ -f "$d/mntns" ] && mntns=$(cat "$d/mntns")
	for p in $$ $BASHPID; do
		while [ "${p:-0}" -gt 1 ]; do
			mine[$p]=1
			p=$(awk '/^PPid:/{print $2}' "/proc/$p/status" 2>/dev/null) || break
		done
	done
	for pid in $(ls /proc | grep -E '^[0-9]+$'); do
		[ -n "${mine[$pid]:-}" ] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
		root=$(readlink "/proc/$pid/root" 2>/dev/null) || true
		cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || true
		if [[ $cmd == *"-address $sock "* ]] || [[ $root == "$d"/* ]] || [[ $cwd == "$d"/* ]] ||
			{ [ -n "$mntns" ] && [[ $cmd == *containerd* ]] && [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$mntns" ]; }; then
			echo "$pid"
		fi
	done
}

# --- start / stop --------------------------------------------------------------

# lock_hold: take podsmith's CNI test lock for as long as a peer of ours
# runs (the tests change ip_forward and portmap's chains too, and put back
# what they found). A standalone start leaves a holder process (a sleep
# with the lock's fd) that restore_host_state ends; bench holds it itself.
lock_hold() {
	[ -n "${PEERS_LOCK_HELD:-}" ] && return 0
	pidfile_pid "$W/lock-holder.pid" podsmith-bench-lock >/dev/null && return 0
	mkdir -p "$W"
	exec 8>>"$CNI_LOCK"
	if ! flock -n 8; then
		say "waiting for $CNI_LOCK (podsmith's CNI tests are running)"
		flock -w "${BENCH_LOCK_WAIT:-3600}" 8 || die "timed out waiting for $CNI_LOCK"
	fi
	(cd / && exec setsid bash -c 'exec -a podsmith-bench-lock sleep infinity' </dev/null >/dev/null 2>&1) &
	echo $! >"$W/lock-holder.pid"
	exec 8>&-
}

lock_release() {
	local pid
	if pid=$(pidfile_pid "$W/lock-holder.pid" podsmith-bench-lock); then
		kill "$pid" 2>/dev/null || true
	fi
	rm -f "$W/lock-holder.pid"
}

save_host_state() {
	mkdir -p "$W"
	[ -f "$W/ip_forward.orig" ] || cat /proc/sys/net/ipv4/ip_forward >"$W/ip_forward.orig"
	[ -f "$W/var-lib-cni.existed" ] || { [ -d /var/lib/cni ] && echo 1 || echo 0; } >"$W/var-lib-cni.existed"
	[ -f "$W/nat-chains.before" ] || iptables-save -t nat | awk '/^:/{print substr($1,2)}' >"$W/nat-chains.before"
	# containerd puts a sandbox without cgroup_parent in /k8s.io/<id>
	[ -f "$W/cgroup-k8s.io.before" ] || ls -d /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io >"$W/cgroup-k8s.io.before" 2>/dev/null || true
}

check_subnet_free() {
	local s=$1
	if ip -4 route show | grep -v "dev ${BRIDGE[$s]} " | grep "^${SUBNET[$s]} " >/dev/null; then
		die "${SUBNET[$s]} is already routed on this host (not via ${BRIDGE[$s]}): pick another subnet in peers.sh"
	fi
}

ctr_of() { if [ "$1" = cd16 ]; then echo /usr/bin/ctr; else echo "$CD24_BIN/ctr"; fi; }

cmd_start() {
	need_root
	local s=$1 d=$W/$1 pid
	peer_ok "$s"
	[ -f "$d/config.toml" ] || die "no $d/config.toml: run 'peers.sh setup' first"
	if pid=$(pidfile_pid "$d/containerd.pid" "$d/config.toml"); then
		say "$s: containerd already running (pid $pid)"
		return 0
	fi
	# Left-overs of a crashed run go first.
	cmd_stop "$s" quiet
	check_subnet_free "$s"
	lock_hold
	save_host_state
	mkdir -p "$d/run" "$d/runc" "$d/s" "$d/cdi" "$d/opt"
	rm -f "$d/containerd.sock" "$d/containerd.sock.ttrpc"
	if [ "$s" = cd16 ]; then
		# unshare does not fork: $! is containerd (nsexec execs it).
		setsid unshare --mount --propagation slave -- bash "$SELF" _nsexec16 >>"$d/containerd.log" 2>&1 </dev/null 8>&- 9>&- &
	else
		# PATH: containerd 2.4 must find its own shim, never 1.6's.
		setsid env PATH="$CD24_BIN:/usr/sbin:/usr/bin:/sbin:/bin" \
			"$CD24_BIN/containerd" --config "$d/config.toml" >>"$d/containerd.log" 2>&1 </dev/null 8>&- 9>&- &
	fi
	pid=$!
	echo "$pid" >"$d/containerd.pid"
	local ctr
	ctr=$(ctr_of "$s")
	for _ in $(seq 300); do
		[ -S "$d/containerd.sock" ] && $ctr -a "$d/containerd.sock" version >/dev/null 2>&1 && break
		alive "$pid" || break
		sleep 0.1
	done
	if ! alive "$pid" || ! $ctr -a "$d/containerd.sock" version >/dev/null 2>&1; then
		tail -20 "$d/containerd.log" >&2
		die "$s: containerd did not come up (log $d/containerd.log)"
	fi
	[ "$s" = cd16 ] && readlink "/proc/$pid/ns/mnt" >"$d/mntns"
	# (ctr 2.x repeats containerd's deprecation warnings on stderr: to the log)
	if ! $ctr -a "$d/containerd.sock" -n k8s.io images ls -q 2>>"$d/containerd.log" | grep -xF "$PAUSE_IMAGE" >/dev/null; then
		$ctr -a "$d/containerd.sock" -n k8s.io images import "$PAUSE_TAR" >/dev/null 2>>"$d/containerd.log"
	fi
	$ctr -a "$d/containerd.sock" -n k8s.io images ls -q 2>>"$d/containerd.log" | grep -xF "$PAUSE_IMAGE" >/dev/null ||
		die "$s: pause image import failed"
	say "$s: containerd $($ctr -a "$d/containerd.sock" version 2>/dev/null | awk '/Server:/{s=1} s&&/Version:/{print $2; exit}') up, pid $pid, socket $d/containerd.sock"
}

# _nsexec16: runs in containerd 1.6's new mount namespace (slave: the
# host's mounts still show up here; nothing made here goes back). /run is
# replaced by a small tmpfs holding symlinks to the host's /run entries,
# and /run/containerd -> our own dir: 1.6's shims put their sockets in
# /run/containerd/s whatever the config says, and the host's
# /run/containerd must not be touched.
cmd_nsexec16() {
	local d=$W/cd16 e n
	if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
		echo "peers: _nsexec16 is not in a mount namespace of its own: refusing to touch /run" >&2
		exit 1
	fi
	mkdir -p "$d/ns/hostrun" "$d/run"
	mount --rbind /run "$d/ns/hostrun"
	mount -t tmpfs -o mode=0755,size=1m pbk-cd16-run /run
	for e in "$d"/ns/hostrun/* "$d"/ns/hostrun/.[!.]*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		n=${e##*/}
		[ "$n" = containerd ] && continue
		ln -s "$e" "/run/$n"
	done
	# iptables' lock must be the host's, even if no one made it yet.
	[ -e /run/xtables.lock ] || ln -s "$d/ns/hostrun/xtables.lock" /run/xtables.lock
	ln -s "$d/run" /run/containerd
	exec env PATH=/usr/sbin:/usr/bin:/sbin:/bin containerd --config "$d/config.toml"
}

# remove_pods <system> <socket>: stop and remove every pod of a running
# runtime through the CRI (so that CNI DEL, unmounts and the rest happen).
remove_pods() {
	local s=$1 id cri
	[ -x "$CRICTL" ] || return 0
	cri="$CRICTL --config /dev/null --runtime-endpoint unix://$2 --timeout 60s"
	for id in $($cri pods -q 2>/dev/null); do
		$cri stopp "$id" >/dev/null 2>&1 || say "$s: crictl stopp $id failed"
		$cri rmp "$id" >/dev/null 2>&1 || say "$s: crictl rmp $id failed"
	done
}

# net_cleanup <system>: what CNI made for that system's network: veths on
# its bridge, the bridge, the iptables rules that name the network (and
# chains only they use), CNI's result cache, host-local's allocations.
net_cleanup() {
	local s=$1 br=${BRIDGE[$1]} p f id
	# CNI's result cache (containerd's libcni keeps it in /var/lib/cni,
	# not configurable): <network>-<container id>-<ifname>, for our
	# network and for the loopback one of our sandboxes.
	for f in /var/lib/cni/results/"$br"-* "$W/$s"/state/io.containerd.grpc.v1.cri/sandboxes/*; do
		[ -e "$f" ] || continue
		id=${f##*/}
		id=${id#"$br"-}
		id=${id%-eth0}
		rm -f "/var/lib/cni/results/$br-$id-eth0" "/var/lib/cni/results/cni-loopback-$id-lo"
	done
	if [ -d "/sys/class/net/$br/brif" ]; then
		for p in $(ls "/sys/class/net/$br/brif"); do ip link del "$p" 2>/dev/null || true; done
	fi
	ip link show "$br" >/dev/null 2>&1 && ip link del "$br" 2>/dev/null || true
	iptables_cleanup "$br"
	rm -rf "${W:?}/$s/ipam/$br"
}

# iptables_cleanup <network>: rules whose comment names the network (portmap:
# dnat name: "<net>"; bridge ipMasq: name: "<net>"), then the chains those
# rules jumped to, then portmap's shared CNI-HOSTPORT-* chains if we made
# them (not there before our first start) and they are empty.
iptables_cleanup() {
	local net=$1 t line chain chains
	for t in nat filter; do
		chains=$(iptables-save -t $t | grep -F -- "$net" | grep -oE -- '-j CNI-[A-Za-z0-9-]+' | awk '{print $2}' |
			grep -vE '^CNI-HOSTPORT-' | sort -u || true)
		iptables-save -t $t | { grep -F -- "$net" || true; } | { grep '^-A ' || true; } | while IFS= read -r line; do
			eval "iptables -w -t $t -D ${line#-A }" 2>/dev/null || true
		done
		for chain in $chains; do
			# drop any rule still jumping to it, then the chain
			iptables-save -t $t | { grep -E -- "-j $chain( |\$)" || true; } | { grep '^-A ' || true; } | while IFS= read -r line; do
				eval "iptables -w -t $t -D ${line#-A }" 2>/dev/null || true
			done
			iptables -w -t $t -F "$chain" 2>/dev/null || true
			iptables -w -t $t -X "$chain" 2>/dev/null || true
		done
	done
}

hostport_chains_cleanup() {
	[ -f "$W/nat-chains.before" ] || return 0
	local c line
	local made
	made=$(iptables-save -t nat | awk '/^:CNI-HOSTPORT-/{print substr($1,2)}' | grep -vxF -f "$W/nat-chains.before" || true)
	[ -n "$made" ] || return 0
	# still used by someone's port mapping: leave them
	iptables-save -t nat | grep -E '^-A CNI-HOSTPORT-DNAT .*-j CNI-DN-' >/dev/null && return 0
	for c in $made; do
		iptables-save -t nat | { grep -E -- "-j $c( |\$)" || true; } | { grep '^-A ' || true; } | { grep -v "^-A $c " || true; } | while IFS= read -r line; do
			eval "iptables -w -t nat -D ${line#-A }" 2>/dev/null || true
		done
	done
	for c in $made; do iptables -w -t nat -F "$c" 2>/dev/null || true; done
	for c in $made; do iptables -w -t nat -X "$c" 2>/dev/null || true; done
}

# umount_under <dir>: every mount point under dir, deepest first.
umount_under() {
	local m
	findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r | while IFS= read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
}

# runc_cleanup <dir>: kill and delete every container in a runc root (this
# also removes their cgroups).
runc_cleanup() {
	local root id
	for root in "$1"/*/; do
		[ -d "$root" ] || continue
		for id in $($RUNC --root "$root" list -q 2>/dev/null); do
			$RUNC --root "$root" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
}

# stop_system <system> <pidfile> <cmdline fragment> <socket>: the shared
# part of stopping containerd or podsmith's shim and everything it left.
stop_system() {
	local s=$1 d=$W/$1 pid procs p
	if pid=$(pidfile_pid "$2" "$3"); then
		remove_pods "$s" "$4"
		kill_wait "$pid"
		say "$s: stopped pid $pid"
	fi
	rm -f "$2"
	runc_cleanup "$d/runc"
	# shims, pause processes and anything else left in our dirs or namespace
	procs=$(our_procs "$s")
	if [ -n "$procs" ]; then
		# pause processes first (a killed shim would orphan them)
		for p in $procs; do
			grep -q containerd-shim "/proc/$p/comm" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
		done
		kill_wait $procs
		say "$s: killed left-over processes: $(echo $procs)"
	fi
	runc_cleanup "$d/runc"
	umount_under "$d"
	net_cleanup "$s"
	rm -rf "$d/s" "$d/run" "$d/ns" "$d/mntns" "$d/containerd.sock" "$d/containerd.sock.ttrpc"
}

any_running() {
	pidfile_pid "$W/cd16/containerd.pid" "$W/cd16/config.toml" >/dev/null ||
		pidfile_pid "$W/cd24/containerd.pid" "$W/cd24/config.toml" >/dev/null ||
		pidfile_pid "$W/ps/crishim.pid" "${PODSMITH_SHIM_SOCK:-$W/crishim.sock}" >/dev/null
}

# restore_host_state: once nothing of ours runs, ip_forward as it was,
# portmap's shared chains if we made them, /var/lib/cni if we made it.
restore_host_state() {
	any_running && return 0
	if [ -f "$W/ip_forward.orig" ]; then
		cat "$W/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward
		rm -f "$W/ip_forward.orig"
	fi
	hostport_chains_cleanup
	rm -f "$W/nat-chains.before"
	if [ "$(cat "$W/var-lib-cni.existed" 2>/dev/null)" = 0 ]; then
		rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
	fi
	rm -f "$W/var-lib-cni.existed"
	local c
	if [ -f "$W/cgroup-k8s.io.before" ]; then
		for c in /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io; do
			[ -d "$c" ] && ! grep -xF "$c" "$W/cgroup-k8s.io.before" >/dev/null || continue
			# empty cgroups only: rmdir fails on one with processes
			find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
		done
		rm -f "$W/cgroup-k8s.io.before"
	fi
	lock_release
}

cmd_stop() {
	need_root
	local s=$1
	peer_ok "$s"
	[ -d "$W/$s" ] || return 0
	stop_system "$s" "$W/$s/containerd.pid" "$W/$s/config.toml" "$W/$s/containerd.sock"
	restore_host_state
	[ "${2:-}" = quiet ] || say "$s: stopped, cleaned up"
}

stop_podsmith() {
	[ -d "$W/ps" ] || return 0
	stop_system ps "$W/ps/crishim.pid" "${PODSMITH_SHIM_SOCK:-$W/crishim.sock}" "${PODSMITH_SHIM_SOCK:-$W/crishim.sock}"
}

cmd_cleanup() {
	need_root
	[ -d "$W" ] || { say "nothing to clean up ($W absent)"; return 0; }
	stop_podsmith
	cmd_stop cd24 quiet
	cmd_stop cd16 quiet
	restore_host_state
	umount_under "$W"
	if findmnt -rn -o TARGET | grep "^$W/" >/dev/null; then
		die "mounts left under $W: not removing it"
	fi
	rm -rf "${W:?}"
	say "cleaned up (removed $W; the build cache $CACHE stays)"
}

cmd_status() {
	local s pid
	for s in cd16 cd24; do
		if pid=$(pidfile_pid "$W/$s/containerd.pid" "$W/$s/config.toml"); then
			echo "$s: running, pid $pid, socket $W/$s/containerd.sock"
		else
			echo "$s: not running"
		fi
	done
	list() { "$@" 2>/dev/null | tr '\n' ' ' || true; }
	echo "our processes: $(list eval 'for s in cd16 cd24 ps; do our_procs $s; done | sort -u')"
	echo "our bridges: $(list eval "ip -o link show type bridge | awk -F': ' '{print \$2}' | grep '^pbk-'")"
	echo "veths on them: $(list eval 'ls /sys/class/net/pbk-*/brif | grep -v :')"
	echo "iptables rules naming our networks: $(list eval "iptables-save | grep -E 'pbk-(cd16|cd24|ps)' | wc -l")"
	echo "CNI cache entries (/var/lib/cni/results): $(list ls /var/lib/cni/results)"
	echo "cgroups k8s.io: $(list eval 'ls -d /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io')"
	echo "mounts under $W: $(list eval "findmnt -rn -o TARGET | grep '^$W/'")"
	echo "ip_forward: $(cat /proc/sys/net/ipv4/ip_forward) (saved: $(cat "$W/ip_forward.orig" 2>/dev/null || echo none))"
	echo "CNI test lock holder: $(pidfile_pid "$W/lock-holder.pid" podsmith-bench-lock || echo none)"
}

# --- bench -------------------------------------------------------------------

start_podsmith() {
	local sock=$1 pid
	stop_podsmith
	mkdir -p "$W/ps/state" "$W/ps/run" "$W/ps/netns"
	cni_conf ps "$W/ps/net.d"
	check_subnet_free ps
	lock_hold
	save_host_state
	rm -f "$sock"
	# shellcheck disable=SC2086 # PODSMITH_SHIM_CMD is a command line
	setsid $PODSMITH_SHIM_CMD >>"$W/ps/crishim.log" 2>&1 </dev/null 8>&- 9>&- &
	pid=$!
	echo "$pid" >"$W/ps/crishim.pid"
	for _ in $(seq 300); do
		[ -S "$sock" ] && break
		alive "$pid" || break
		sleep 0.1
	done
	if ! alive "$pid" || [ ! -S "$sock" ]; then
		tail -20 "$W/ps/crishim.log" >&2
		die "podsmith's shim did not come up (log $W/ps/crishim.log)"
	fi
	say "ps: podsmith's shim up, pid $pid, socket $sock"
}

# bench_finish (the EXIT trap of bench): stop everything, keep the logs
# with the results, remove the work dir.
bench_finish() {
	local rc=$? f
	trap - EXIT INT TERM HUP ERR
	set +e
	say "stopping everything"
	stop_podsmith
	cmd_stop cd24 quiet
	cmd_stop cd16 quiet
	for f in cd16/containerd.log:containerd-1.6.log cd24/containerd.log:containerd-2.4.log ps/crishim.log:crishim.log; do
		[ -f "$W/${f%%:*}" ] && cp "$W/${f%%:*}" "$RESULTS/${f#*:}"
	done
	cmd_cleanup
	local left
	left=$(for s in cd16 cd24 ps; do our_procs $s; done | sort -u | tr '\n' ' ')
	[ -z "$left" ] || { say "error: processes left: $left"; rc=1; }
	say "results in $RESULTS"
	exit $rc
}

cmd_bench() {
	need_root
	local cribench=${CRIBENCH:-} n=${BENCH_ITERATIONS:-30} conc=${BENCH_CONCURRENCY:-1,4}
	local nets=${BENCH_NETWORKS:-pod,host} pods=${BENCH_MEMORY_PODS:-20} ref=${BENCH_REF:-containerd-2.4}
	local sock=${PODSMITH_SHIM_SOCK:-$W/crishim.sock}
	[ -n "$cribench" ] && [ -x "$cribench" ] || die "CRIBENCH must name the cribench binary (make bench-peers builds it)"
	RESULTS=${BENCH_RESULTS:-$CACHE/results}/$(date +%Y%m%d-%H%M%S)
	mkdir -p "$RESULTS"
	[ -d "$W" ] && say "$W exists: a previous run's left-overs go first"
	# The lock is held by this shell's fd 9: it goes when the bench does,
	# however it ends.
	exec 9>>"$CNI_LOCK"
	if ! flock -n 9; then
		say "waiting for $CNI_LOCK (podsmith's CNI tests are running)"
		flock -w "${BENCH_LOCK_WAIT:-3600}" 9 || die "timed out waiting for $CNI_LOCK"
	fi
	export PEERS_LOCK_HELD=1
	trap bench_finish EXIT
	trap 'exit 130' INT TERM HUP
	cmd_setup
	cmd_start cd16
	cmd_start cd24
	local eps=()
	local shim_bin=${PODSMITH_SHIM_CMD%% *}
	if [ -n "${PODSMITH_SHIM_CMD:-}" ] && [ -x "$shim_bin" ]; then
		start_podsmith "$sock"
		eps+=(-endpoint "podsmith=unix://$sock")
	else
		say "podsmith's CRI shim ($shim_bin) is not built: benchmarking containerd 1.6 and 2.4 only"
	fi
	eps+=(-endpoint "containerd-1.6=unix://$W/cd16/containerd.sock" -endpoint "containerd-2.4=unix://$W/cd24/containerd.sock")
	{
		echo "# podsmith bench-peers $(date -Is) on $(hostname), $(nproc) CPUs, kernel $(uname -r)"
		echo "# runc $($RUNC --version | awk 'NR==1{print $3}'), CNI plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null)"
	} | tee "$RESULTS/summary.txt"
	say "latency: $n iterations, concurrency $conc, networks $nets"
	"$cribench" "${eps[@]}" -ref "$ref" -n "$n" -c "$conc" -net "$nets" -json-file "$RESULTS/latency.json" |
		tee -a "$RESULTS/summary.txt"
	say "memory: $pods pods per system"
	"$cribench" "${eps[@]}" -ref "$ref" -memory="$pods" -json-file "$RESULTS/memory.json" |
		tee -a "$RESULTS/summary.txt"
}

main() {
	local cmd=${1:-}
	shift || true
	case "$cmd" in
	setup) cmd_setup ;;
	start) cmd_start "${1:-}" ;;
	stop) cmd_stop "${1:-}" ;;
	cleanup) cmd_cleanup ;;
	purge)
		cmd_cleanup
		rm -rf "${CACHE:?}"
		say "removed $CACHE"
		;;
	status) cmd_status ;;
	bench) cmd_bench ;;
	_nsexec16) cmd_nsexec16 ;;
	*)
		sed -n '2,/^set -eEuo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
