#!/usr/bin/env bash
# Builds the root file system of the emulated arm64 dock board (level 2 of the VM tests,
# build/vmtest): Debian arm64 (the machine's own release and archive) with systemd, udev,
# e2fsprogs and the qemu guest agent (the test's hands inside the guest), built by mmdebstrap
# through qemu-user-static, plus the modules of the trixie-backports kernel that
# fetch-kernel.sh fetched (gpio-sim, USB serial and storage, vfat) and an initramfs that
# mounts the root from the virtio disk. Into build/out/vm/ go rootfs.ext4 (a 2 GiB sparse
# image each test copies) and initrd.img. Does nothing when they are there; the dock's
# package is not in it: the test installs it with dpkg -i, as an operator would.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${DOCK_VM_DIR:-$repo/build/out/vm}
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

bash "$repo/build/vm/fetch-kernel.sh"
if [ -s "$out/rootfs.ext4" ] && [ -s "$out/initrd.img" ]; then
  exit 0
fi

need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v arch-test >/dev/null 2>&1 || need+=(arch-test)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /sbin/mkfs.ext4 ] || need+=(e2fsprogs)
command -v mkfs.vfat >/dev/null 2>&1 || [ -x /sbin/mkfs.vfat ] || need+=(dosfstools)
command -v mcopy >/dev/null 2>&1 || need+=(mtools)
if [ ${#need[@]} -gt 0 ]; then
  echo "build-rootfs: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin

# mmdebstrap runs the arm64 maintainer scripts through binfmt_misc and qemu-user-static.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  [ -e "$binfmt/register" ] || $SUDO mount -t binfmt_misc binfmt_misc "$binfmt"
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f "$conf" ] || { echo "build-rootfs: no $conf (package qemu-user-static)" >&2; exit 1; }
  grep -v '^#' "$conf" | $SUDO tee "$binfmt/register" >/dev/null
  echo "build-rootfs: registered qemu-aarch64 with binfmt_misc" >&2
fi

. "$repo/build/vm/archive.sh"
archive=$(debian_archive) || { echo "build-rootfs: cannot name an archive" >&2; exit 1; }
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
abi=$(cat "$out/abi")

kver=$abi-arm64 # the modules' directory, uname -r

work=$out/rootfs.tmp
root=$work/root
mkdir -p "$work/debs"
if [ ! -e "$work/debs/done" ]; then
  echo "build-rootfs: linux-modules-$abi-arm64" >&2
  (cd "$work/debs" && rm -f ./*.deb && APT_CONFIG=$out/apt/apt.conf apt-get download -qq "linux-modules-$abi-arm64")
  touch "$work/debs/done"
fi
modules_deb=$(ls "$work/debs"/linux-modules-*.deb)

start=$SECONDS
# Stage 1, kept in rootfs.tmp until the image is made: Debian's packages, their maintainer
# scripts run through qemu-user.
if [ ! -e "$work/stage1-done" ]; then
  echo "build-rootfs: Debian $suite arm64 from $archive (mmdebstrap, a few minutes)" >&2
  rm -rf "$root"
  mmdebstrap --quiet --architecture=arm64 --variant=minbase --mode=root \
    --include=systemd-sysv,udev,kmod,e2fsprogs,adduser,iproute2,qemu-guest-agent,initramfs-tools,busybox \
    "$suite" "$root" "$archive"
  touch "$work/stage1-done"
  echo "build-rootfs: packages installed in $((SECONDS - start)) s" >&2
fi

# Stage 2, repeatable: the kernel's modules, the board's settings, the initramfs.
cleanup() {
  for m in dev sys proc; do umount -l "$root/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
# A /dev of its own (not the host's, which a removal of the tree must never reach).
mount -t tmpfs -o mode=0755 devtmp "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/urandom" c 1 9
dpkg-deb -x "$modules_deb" "$root"
chroot "$root" depmod "$kver"
echo dock-vm > "$root/etc/hostname"
printf '/dev/vda / ext4 errors=remount-ro 0 1\n' > "$root/etc/fstab"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > "$root/etc/systemd/network/10-user.network"
chroot "$root" systemctl enable systemd-networkd.service
chroot "$root" passwd -d root >/dev/null
printf 'MODULES=list\nCOMPRESS=gzip\n' > "$root/etc/initramfs-tools/conf.d/dock-vm.conf"
printf 'virtio_blk\next4\ncrc32c\n' > "$root/etc/initramfs-tools/modules"
# mkinitramfs asks the kernel's config whether it unpacks gzip; the split package ships no
# config, and this kernel does (hw/vmtest boots a gzip'd initramfs on it).
[ -e "$root/boot/config-$kver" ] || printf 'CONFIG_RD_GZIP=y\nCONFIG_BLK_DEV_INITRD=y\n' > "$root/boot/config-$kver"
chroot "$root" mkinitramfs -o /boot/initrd.img "$kver"
cp "$root/boot/initrd.img" "$work/initrd.img"
cleanup
trap - EXIT
if grep -q " $root/" /proc/mounts; then
  echo "build-rootfs: $root still has mounts: not going on" >&2
  exit 1
fi

mkfs.ext4 -q -F -L dock-root -d "$root" "$work/rootfs.ext4" 2G
mv "$work/initrd.img" "$out/initrd.img"
mv "$work/rootfs.ext4" "$out/rootfs.ext4"
rm -rf "$work"
echo "build-rootfs: $out/rootfs.ext4 ($(du -h "$out/rootfs.ext4" | cut -f1) used), $out/initrd.img in $((SECONDS - start)) s" >&2
