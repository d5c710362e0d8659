#!/usr/bin/env bash
# podctl run with a pause versus run --no-pause, end to end (the podctl
# process, the build, and for the pause runc's run), interleaved iteration
# by iteration in one run, loopback only; each pod is removed untimed.
# Root; prints p50 and p90 in ms and the ratio. Usage: bench/pause-modes.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-30}
d=$(mktemp -d /var/tmp/podsmith-pause-modes.XXXXXX)
parent=/podsmith-bench-$(basename "$d")
p=".bin/podctl --root $d/state --run-root $d/run --netns-dir $d/netns --cni-conf-dir $d/none --cgroup-parent $parent"
cleanup() {
	rm -rf "$d"
	for c in /sys/fs/cgroup/*"$parent"; do [ -d "$c" ] && rmdir "$c"; done
	return 0
}
trap cleanup EXIT
ns() { date +%s%N; }
for _ in $(seq "$n"); do
	t0=$(ns); a=$($p run examples/pods/basic.json); t1=$(ns)
	b=$($p run --no-pause examples/pods/no-pause.json); t2=$(ns)
	echo "$(( (t1 - t0) / 1000 )) $(( (t2 - t1) / 1000 ))" >> "$d/times"
	$p rm -f "$a"; $p rm -f "$b"
done
# q COLUMN PERCENT: that quantile of a column, in µs.
q() { cut -d' ' -f"$1" "$d/times" | sort -n | sed -n "$(( n * $2 / 100 + 1 ))p"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
echo "podctl run, pause:     p50 $(ms "$(q 1 50)") ms  p90 $(ms "$(q 1 90)") ms"
echo "podctl run --no-pause: p50 $(ms "$(q 2 50)") ms  p90 $(ms "$(q 2 90)") ms  ($(awk -v a="$(q 2 50)" -v b="$(q 1 50)" 'BEGIN { printf "%.2f", a / b }')x the pause p50)"
