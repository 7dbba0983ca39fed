#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# install-deps.sh - install the Debian 12 packages that moat's build, tests
# and demo need. Installs only what is missing; runs apt-get through sudo
# when not root. MOAT_SKIP_APT=1 skips the step. With --bench it installs
# what bench/bench.py needs as well (nginx, wrk, slirp4netns, passt).
set -eu

packages="meson ninja-build pkg-config gcc libc6-dev libglib2.0-dev
libslirp-dev libgnutls28-dev libcurl4-gnutls-dev ca-certificates
qemu-system-x86 busybox-static cpio linux-image-cloud-amd64 kmod curl
openssl gnutls-bin python3 iproute2 util-linux clang libclang-rt-14-dev
valgrind nginx-light wget git"

# The benchmark's upstream, load generator and the stacks it compares.
bench_packages="libnginx-mod-http-echo wrk slirp4netns passt"

case "${1:-}" in
--bench) packages="$packages $bench_packages" ;;
"") ;;
*)
	echo "install-deps.sh: unknown argument \"$1\"; the only option is --bench" >&2
	exit 2
	;;
esac

if [ "${MOAT_SKIP_APT:-0}" = 1 ]; then
	exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps.sh: not a Debian system; install the packages listed" \
		"in README.md by hand and set MOAT_SKIP_APT=1" >&2
	exit 1
fi

missing=""
for package in $packages; do
	status=$(dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null || true)
	[ "$status" = installed ] || missing="$missing $package"
done
if [ -z "$missing" ]; then
	echo "== Debian packages: all present"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	as_root=""
elif command -v sudo >/dev/null 2>&1; then
	as_root=sudo
else
	echo "install-deps.sh: missing packages:$missing; run as root or" \
		"install sudo" >&2
	exit 1
fi
echo "== installing:$missing"
$as_root apt-get update
# shellcheck disable=SC2086 # the list is meant to split into words
$as_root env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends $missing
