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

if [ "$(id -u)" -eq 0 ]; then
	as_root=""
elif command -v sudo >/dev/null 2>&1; then
	as_root=sudo
else
	echo "demo.sh: run as root or install sudo" >&2
	exit 1
fi

# One package list for the demo and the tests.
MOAT_SKIP_APT=${MOAT_DEMO_SKIP_APT:-${MOAT_SKIP_APT:-0}} \
	"$repo/contrib/install-deps.sh"

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
