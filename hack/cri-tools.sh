#!/usr/bin/env bash
# Builds crictl and critest from sigs.k8s.io/cri-tools (through the Go module
# proxy) once, into a cache directory, and prints where they are. Later runs
# only check the cache and print.
#
#   hack/cri-tools.sh           prints the directory (holding crictl, critest)
#   hack/cri-tools.sh paths     prints the crictl path, then the critest path
#   hack/cri-tools.sh crictl    prints the crictl path
#   hack/cri-tools.sh critest   prints the critest path
#
# Environment:
#   PODSMITH_CRI_TOOLS_DIR  the cache directory (default
#                           /var/cache/podsmith/tools/cri-tools-$VERSION; a
#                           non-root user who finds no complete cache there
#                           and cannot write there gets
#                           ${XDG_CACHE_HOME:-~/.cache}/podsmith/tools/...)
#   GO                      the go command (default: go)
#
# Nothing but the path(s) goes to stdout; progress and errors go to stderr.
# The Go module and build caches are the default ones (go env GOMODCACHE,
# GOCACHE). The binaries are built as upstream's Makefile builds them
# (CGO_ENABLED=0, -trimpath, version stamped) into a temporary directory next
# to the cache directory, which is renamed into place only when complete: a
# run that races another (or is killed) never leaves a half-built cache, and
# concurrent runs also serialise on a flock(1) lock so only one builds.
set -euo pipefail

VERSION=v1.37.0
MODULE=sigs.k8s.io/cri-tools
GO=${GO:-go}

what=${1:-dir}
case $what in
dir | paths | crictl | critest) ;;
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "usage: $0 [dir|paths|crictl|critest]" >&2
	exit 2
	;;
esac

die() {
	echo "cri-tools.sh: $*" >&2
	exit 1
}

command -v "$GO" >/dev/null || die "no '$GO' command in PATH"
# The binaries run here: build for this host whatever GOOS/GOARCH say.
read -r -d '' GOOS GOARCH < <("$GO" env GOHOSTOS GOHOSTARCH) || true
[ -n "$GOOS" ] && [ -n "$GOARCH" ] || die "'$GO env GOHOSTOS GOHOSTARCH' failed"
export GOOS GOARCH
# The stamp names what was built, for which platform, by which recipe (bump
# recipe when changing how the binaries are built): any other stamp rebuilds.
recipe=1
stamp="$MODULE $VERSION $GOOS/$GOARCH recipe=$recipe"

complete() {
	[ -x "$1/crictl" ] && [ -x "$1/critest" ] && [ -f "$1/STAMP" ] &&
		[ "$(cat "$1/STAMP")" = "$stamp" ]
}

# The default cache is shared: a non-root user uses a complete one (root
# built it), else builds into their own cache when they cannot write there.
default_dir=/var/cache/podsmith/tools/cri-tools-$VERSION
dir=${PODSMITH_CRI_TOOLS_DIR:-}
if [ -z "$dir" ]; then
	dir=$default_dir
	if ! complete "$dir" && [ "$(id -u)" != 0 ] &&
		{ ! mkdir -p "$(dirname "$dir")" 2>/dev/null || [ ! -w "$(dirname "$dir")" ]; }; then
		dir=${XDG_CACHE_HOME:-$HOME/.cache}/podsmith/tools/cri-tools-$VERSION
	fi
fi
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
dir=${dir%/}
parent=$(dirname "$dir")

print() {
	case $what in
	dir) echo "$dir" ;;
	paths) printf '%s\n%s\n' "$dir/crictl" "$dir/critest" ;;
	crictl | critest) echo "$dir/$what" ;;
	esac
}

if complete "$dir"; then
	print
	exit 0
fi
mkdir -p "$parent" || die "cannot create $parent"

# Serialise builders (a second run waits, then finds the cache complete). The
# rename below keeps the cache safe even where flock is missing.
if command -v flock >/dev/null; then
	exec 9>"$dir.lock"
	flock 9
	if complete "$dir"; then
		print
		exit 0
	fi
fi

tmp=$(mktemp -d "$dir.tmp.XXXXXX")
cleanup() {
	if [ -d "$tmp" ]; then
		chmod -R u+w "$tmp" 2>/dev/null || true
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

echo "cri-tools.sh: building crictl and critest $VERSION into $dir (once)" >&2
start=$SECONDS

# A build must not see the caller's module settings (a go.work, -mod=vendor).
export GOWORK=off GOFLAGS= CGO_ENABLED=0

# Download the module first, so an unreachable proxy fails here, clearly.
if ! modjson=$(cd "$tmp" && "$GO" mod download -json "$MODULE@$VERSION" 2>&1); then
	err=$(sed -n 's/\\"/"/g; s/^[[:space:]]*"Error": "\(.*\)"$/\1/p' <<<"$modjson")
	die "cannot download $MODULE@$VERSION through the Go module proxy (GOPROXY=$("$GO" env GOPROXY)): ${err:-$modjson}"
fi
moddir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$modjson")
[ -n "$moddir" ] && [ -f "$moddir/go.mod" ] ||
	die "go mod download gave no module directory:
$modjson"

ldflags="-X $MODULE/pkg/version.Version=${VERSION#v}"

# crictl: a plain go install of the released module.
GOBIN=$tmp "$GO" install -trimpath -ldflags "$ldflags" "$MODULE/cmd/crictl@$VERSION" ||
	die "building crictl failed (is the Go module proxy, $("$GO" env GOPROXY), reachable?)"

# critest is a test binary. The module cache is read-only and go test -c wants
# a main module: build it in a writable copy of the module (with its own
# go.mod and go.sum, so the dependency versions are upstream's). The
# released module has no vendor directory, hence -mod=mod.
src=$tmp/src
cp -R "$moddir" "$src"
chmod -R u+w "$src"
(cd "$src" && "$GO" test -c -mod=mod -vet=off -trimpath -ldflags "$ldflags" \
	-o "$tmp/critest" ./cmd/critest) ||
	die "building critest failed (is the Go module proxy, $("$GO" env GOPROXY), reachable?)"
rm -rf "$src"

echo "$stamp" >"$tmp/STAMP"
"$GO" version >"$tmp/GOVERSION"
chmod 755 "$tmp"

# Replace an incomplete or stale cache (another recipe or platform) by moving
# it aside first; then rename the new one into place. rename(2) fails when
# the target is a non-empty directory: a racer that got there first (without
# flock) wins, and its cache is as good as ours.
if [ -e "$dir" ] && ! complete "$dir"; then
	old=$(mktemp -d "$dir.old.XXXXXX")
	mv -T "$dir" "$old/x" 2>/dev/null || true
	rm -rf "$old"
fi
if ! mv -T "$tmp" "$dir" 2>/dev/null; then
	complete "$dir" || die "cannot rename $tmp to $dir"
fi
echo "cri-tools.sh: built in $((SECONDS - start))s" >&2
print
