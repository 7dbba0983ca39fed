#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# build-initramfs.sh - build the test guest: a Debian cloud kernel plus a
# busybox + curl initramfs that gets an address by DHCP and runs /case.sh.
#
# Usage: tests/guest/build-initramfs.sh OUTDIR
# Writes OUTDIR/vmlinuz and OUTDIR/initramfs.cpio.gz. Skips the work when the
# inputs (this script, the kernel, busybox, curl and its libraries) have not
# changed since the last build.
#
# Needs the Debian packages busybox-static, cpio, linux-image-cloud-amd64,
# curl and kmod (for modprobe --show-depends).
#
# The case script and moat's CA arrive as a second, uncompressed cpio
# archive that the harness puts in front of initramfs.cpio.gz: Linux unpacks
# every archive of a concatenated initramfs into the same rootfs. Linux 6.1
# rejects an archive placed after the gzip one ("invalid magic at start of
# compressed archive"), so the order matters.
#
# Environment: MOAT_GUEST_KERNEL=VERSION picks a kernel in /boot other than
# the newest *-cloud-amd64 one.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
outdir=$1
script_dir=$(cd "$(dirname "$0")" && pwd)

die() {
	echo "build-initramfs: $*" >&2
	exit 1
}

for tool in busybox cpio gzip modprobe ldd sha256sum; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found; install busybox-static, cpio, gzip, kmod and libc-bin"
done
[ -x /usr/bin/curl ] || die "/usr/bin/curl not found; install the Debian package curl"
busybox_bin=$(command -v busybox)
# The guest has no shared libraries for busybox: only the static build works.
if ldd "$busybox_bin" >/dev/null 2>&1; then
	die "$busybox_bin is dynamically linked; install busybox-static"
fi

if [ -n "${MOAT_GUEST_KERNEL:-}" ]; then
	kver=$MOAT_GUEST_KERNEL
else
	kver=$(ls /boot | sed -n 's/^vmlinuz-\(.*-cloud-amd64\)$/\1/p' | sort -V | tail -n 1)
fi
[ -n "$kver" ] || die "no /boot/vmlinuz-*-cloud-amd64; install linux-image-cloud-amd64"
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
[ -r "$kernel" ] || die "$kernel is missing or not readable"
[ -d "$moddir" ] || die "$moddir is missing; reinstall linux-image-$kver"

# virtio_pci finds the NIC, virtio_net drives it. modprobe prints each
# module's dependencies first, so the list is already in load order.
# Without -a, modprobe would read the second name as a module parameter.
modules=$(modprobe -a --show-depends -S "$kver" virtio_pci virtio_net |
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
[ -n "$modules" ] || die "modprobe found no virtio_pci/virtio_net modules for $kver"

curl_libs=$(ldd /usr/bin/curl | awk '
	$2 == "=>" && $3 ~ /^\// { print $3 }
	$1 ~ /^\// { print $1 }')

# The stamp lists every input with its size and mtime: a changed package
# changes the stamp and forces a rebuild.
mkdir -p "$outdir"
stamp_new=$(
	sha256sum "$0" "$script_dir/init" "$script_dir/udhcpc.script"
	echo "$kver"
	for f in "$kernel" "$busybox_bin" /usr/bin/curl $curl_libs $modules; do
		stat -L -c '%n %s %Y' "$f"
	done
)
if [ -f "$outdir/initramfs.cpio.gz" ] && [ -f "$outdir/vmlinuz" ] &&
	[ -f "$outdir/stamp" ] && [ "$(cat "$outdir/stamp")" = "$stamp_new" ]; then
	echo "build-initramfs: $outdir is up to date"
	exit 0
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/moat-guest.XXXXXX")
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" \
	"$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" \
	"$root/run" "$root/root" "$root/modules"

cp "$busybox_bin" "$root/bin/busybox"
for applet in $("$busybox_bin" --list-full); do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

# curl and every library it links, at the paths the dynamic loader expects.
cp /usr/bin/curl "$root/usr/bin/curl"
for lib in $curl_libs; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done

# Modules go in a flat folder with a load-order list, decompressed because
# busybox insmod reads plain ELF only.
: >"$root/modules/order"
for mod in $modules; do
	name=$(basename "$mod")
	case "$name" in
	*.ko) cp "$mod" "$root/modules/$name" ;;
	*.ko.xz) name=${name%.xz}; xz -dc "$mod" >"$root/modules/$name" ;;
	*.ko.zst) name=${name%.zst}; zstd -qdc "$mod" >"$root/modules/$name" ;;
	*.ko.gz) name=${name%.gz}; gzip -dc "$mod" >"$root/modules/$name" ;;
	*) die "unknown module format: $mod" ;;
	esac
	echo "$name" >>"$root/modules/order"
done

install -m 0755 "$script_dir/init" "$root/init"
install -m 0755 "$script_dir/udhcpc.script" "$root/udhcpc.script"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "127.0.0.1 localhost" >"$root/etc/hosts"
# Host names resolve through /etc/hosts (localhost only), then DNS.
echo "hosts: files dns" >"$root/etc/nsswitch.conf"

(cd "$root" && find . -print | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) |
	gzip -6 -n >"$outdir/initramfs.cpio.gz.tmp"
mv "$outdir/initramfs.cpio.gz.tmp" "$outdir/initramfs.cpio.gz"
cp "$kernel" "$outdir/vmlinuz"
printf '%s\n' "$stamp_new" >"$outdir/stamp"
echo "build-initramfs: wrote $outdir/vmlinuz ($kver) and $outdir/initramfs.cpio.gz"
