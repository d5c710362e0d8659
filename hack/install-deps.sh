#!/usr/bin/env bash
# Installs the Debian packages podsmith's privileged tests and demo need, when
# any is missing. Runs apt-get (update first) only when something is missing,
# and only as root on Debian; otherwise it says what is missing and goes on
# (the privileged tests then skip, or fail under PODSMITH_REQUIRE_ROOT=1).
set -euo pipefail

pkgs=(runc crun containernetworking-plugins catatonit iproute2 iptables busybox-static)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
	echo "install-deps: missing ${missing[*]} (not root on Debian: not installing; privileged tests will skip)" >&2
	exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
