#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# demo.sh - install what moat needs on Debian 12, build moat and the test
# guest, then boot the guest behind moat and show each decision it made.
#
# Run from anywhere, as root or as a user who may use sudo. The demo runs in
# a private network namespace with only loopback: no packet leaves the
# machine. Environment: MOAT_DEMO_SKIP_APT=1 skips the package step, and
# MOAT_DEMO_BUILD_DIR sets the meson build folder (default: build/).
#
# NOTE: linux-image-cloud-amd64 supplies the guest's kernel. Installing it
# also adds that kernel to the host's boot menu.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${MOAT_DEMO_BUILD_DIR:-$repo/build}

packages="meson ninja-build pkg-config gcc libglib2.0-dev libslirp-dev
libgnutls28-dev libcurl4-gnutls-dev qemu-system-x86 busybox-static cpio
linux-image-cloud-amd64 curl openssl python3 iproute2 util-linux kmod"

if [ "$(id -u)" -eq 0 ]; then
	as_root=""
elif command -v sudo >/dev/null 2>&1; then
	as_root=sudo
else
	echo "demo.sh: run as root or install sudo" >&2
	exit 1
fi

missing=""
for package in $packages; do
	status=$(dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null || true)
	[ "$status" = installed ] || missing="$missing $package"
done
if [ -n "$missing" ] && [ "${MOAT_DEMO_SKIP_APT:-0}" != 1 ]; then
	echo "== installing:$missing"
	$as_root apt-get update
	# shellcheck disable=SC2086 # the list is meant to split into words
	$as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends $missing
else
	echo "== Debian packages: all present"
fi

echo "== building moat in $build"
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$repo"
fi
ninja -C "$build" src/moat

echo "== building the guest in $build/guest"
# Debian makes /boot/vmlinuz-* readable by root only.
if [ -z "$as_root" ]; then
	"$repo/tests/guest/build-initramfs.sh" "$build/guest"
else
	$as_root "$repo/tests/guest/build-initramfs.sh" "$build/guest"
	$as_root chown -R "$(id -u):$(id -g)" "$build/guest"
fi

echo "== running the demo"
exec python3 "$repo/contrib/demo/demo.py" --moat "$build/src/moat" \
	--guest-dir "$build/guest" "$@"
