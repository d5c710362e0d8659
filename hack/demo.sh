#!/usr/bin/env bash
# The quickstart (make demo): build a pod sandbox with podsmith's defaults,
# attached to a demo CNI network, start its pause process with runc, look
# inside it from the host, stop and remove it, and check that nothing is
# left. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
pod=examples/pods/basic.json

# The demo's own network: a bridge and a subnet used by nothing else
# (10.199.255.0/24) and host-local IPAM; removed at the end. (No portmap:
# it adds iptables chains every user shares, even for a pod without port
# mappings.)
demo=/run/podsmith-demo
bridge=psdemo0
mkdir -p $demo/net.d
cat > $demo/net.d/10-podsmith-demo.conflist <<CONF
{"cniVersion": "1.0.0", "name": "podsmith-demo", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$demo/ipam", "ranges": [[{"subnet": "10.199.255.0/24"}]]}}]}
CONF
forward=$(cat /proc/sys/net/ipv4/ip_forward)
cleanup_network() {
  ip link del $bridge 2>/dev/null || true
  echo "$forward" > /proc/sys/net/ipv4/ip_forward
  rm -rf $demo
}
trap cleanup_network EXIT
podctl="${PODCTL:-.bin/podctl} --cni-conf-dir $demo/net.d"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
field() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p"; }

# What the demo makes beyond the pod: podctl's default directories and the
# default cgroup parent. Remove at the end only what was not there before.
made=()
for d in /var/lib/podsmith /run/podsmith /run/netns; do [ -e "$d" ] || made+=("$d"); done
had_cgroup=0; ls -d /sys/fs/cgroup/*/podsmith >/dev/null 2>&1 && had_cgroup=1

say "podctl run $pod"
t0=$(date +%s%N)
id=$($podctl run "$pod")
t1=$(date +%s%N)
echo "$id   (built and started in $(( (t1 - t0) / 1000000 )) ms)"

say "podctl inspect ${id:0:12}"
$podctl inspect "$id" | tee /tmp/podsmith-demo-inspect.json
pid=$(field pause_pid < /tmp/podsmith-demo-inspect.json)
monitor=$(field monitor_pid < /tmp/podsmith-demo-inspect.json)
bundle=$(field bundle_dir < /tmp/podsmith-demo-inspect.json)
podip=$(sed -n '/"ips": \[/{n;s/[^0-9a-f.:]//gp;}' /tmp/podsmith-demo-inspect.json)
rm -f /tmp/podsmith-demo-inspect.json

say "from the host, inside the pause process (PID $pid)"
echo "command:       $(tr '\0' ' ' < /proc/$pid/cmdline)"
echo "hostname:      $(nsenter -t "$pid" -u hostname)"
echo "net namespace: $(readlink /proc/$pid/ns/net) (the host's is $(readlink /proc/self/ns/net))"
echo "interfaces:    $(nsenter -t "$pid" -n ip -brief -4 addr | awk '{print $1" "$3}' | paste -sd, -)"
echo "from the host: $(ip route get "$podip" | head -1)"
echo "/dev/shm:      $(grep ' /dev/shm ' /proc/$pid/mountinfo | awk '{print $9" "$NF}')"
echo "root:          $(awk '$5 == "/" {print $6}' /proc/$pid/mountinfo | tail -1)"
echo "resolv.conf:"
sed 's/^/  /' /proc/$pid/root/etc/resolv.conf

say "podctl join ${id:0:12} -- a busybox container in the pod"
$podctl join "$id" -- sh -c 'echo "hostname:  $(hostname)"; echo "eth0:      $(ip -4 -o addr show eth0 | awk "{print \$4}")"; '"ping -c 1 -W 2 $podip | grep -m1 'bytes from' | sed 's/^/ping:      /'"'; echo "PID 1:     $(cat /proc/1/comm) (the pod'"'"'s pause: one PID namespace)"'

say "podctl run --no-pause examples/pods/no-pause.json (no pause process: IPC and UTS pinned)"
t0=$(date +%s%N)
np=$($podctl run --no-pause examples/pods/no-pause.json)
t1=$(date +%s%N)
echo "$np   (built in $(( (t1 - t0) / 1000000 )) ms, nothing started)"
npip=$($podctl inspect "$np" | sed -n '/"ips": \[/{n;s/[^0-9a-f.:]//gp;}')
$podctl join "$np" -- sh -c 'echo "hostname:  $(hostname)"; echo "eth0:      $(ip -4 -o addr show eth0 | awk "{print \$4}")"; echo "shmmni:    $(cat /proc/sys/kernel/shmmni) (the pod'"'"'s IPC sysctl)"; echo "PID 1:     $(cat /proc/1/comm) (a PID namespace of its own)"'
$podctl stop "$np"
$podctl rm "$np"

say "podctl stop ${id:0:12}; podctl rm ${id:0:12}"
$podctl stop "$id"
$podctl rm "$id"
$podctl ls

say "nothing left behind?"
left=0
check() { if [ -n "$2" ]; then echo "left: $1: $2"; left=1; else echo "ok: no $1"; fi; }
check "mount of the sandbox" "$(grep -F -e "$id" -e "$np" /proc/self/mountinfo || true)"
check "netns pin" "$(ls /run/netns 2>/dev/null | grep -F -e "$id" -e "$np" || true)"
check "bundle" "$( [ -e "$bundle" ] && echo "$bundle" || true)"
check "address held by IPAM" "$(ls $demo/ipam/podsmith-demo 2>/dev/null | grep -F -e "$podip" -e "$npip" || true)"
check "veth on the demo bridge" "$(ls /sys/class/net/$bridge/brif 2>/dev/null || true)"
# The monitor that reaped the pause has exited; its parent is PID 1, which
# on some VMs reaps orphans only every second or two.
for _ in $(seq 100); do [ -e "/proc/$monitor" ] || break; sleep 0.1; done
check "process of the sandbox" "$(ps -o pid=,stat=,comm= -p "$pid,$monitor" || true)"
for d in "${made[@]}"; do rm -rf "$d"; done
if [ $had_cgroup = 0 ]; then
  for d in /sys/fs/cgroup/*/podsmith; do [ -d "$d" ] && rmdir "$d"; done
fi
exit $left
