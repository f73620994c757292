#!/usr/bin/env bash
# Fetches what the emulated arm64 dock board needs (hw/vmtest): qemu-system-aarch64, and
# the arm64 kernel of trixie-backports, whose gpio-sim module Debian 12's kernels lack.
#
# The kernel comes through a private APT_CONFIG (its own sources, lists, cache and dpkg
# status under build/out/vm/apt): the machine's apt state is never touched. The archive is
# the one the machine's own apt sources name. Into build/out/vm/ go vmlinuz.gz (qemu's
# -kernel), configfs.ko.xz, gpio-sim.ko.xz and abi. Does nothing for what is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${DOCK_VM_DIR:-$root/build/out/vm}
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

if ! command -v qemu-system-aarch64 >/dev/null 2>&1; then
  echo "installing qemu-system-arm" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null
fi

if [ -s "$out/vmlinuz.gz" ] && [ -s "$out/configfs.ko.xz" ] && [ -s "$out/gpio-sim.ko.xz" ] && [ -s "$out/abi" ]; then
  exit 0
fi

# The archive's URI, from the machine's own apt sources (build/vm/archive.sh).
. "$root/build/vm/archive.sh"
archive=$(debian_archive) || { echo "fetch-kernel: cannot name an archive" >&2; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { echo "fetch-kernel: $keyring missing (package debian-archive-keyring)" >&2; exit 1; }

apt=$out/apt
rm -rf "$apt" "$out/tmp"
mkdir -p "$apt"/{lists/partial,cache/archives/partial,state,sources.d,prefs.d} "$out/tmp"
touch "$apt/state/status"
cat > "$apt/sources.list" <<SRC
deb [arch=arm64 signed-by=$keyring] $archive trixie-backports main
SRC
cat > "$apt/apt.conf" <<CONF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
Dir::State "$apt/state";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/state/status";
Dir::Cache "$apt/cache";
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "$apt/sources.d";
Dir::Etc::PreferencesParts "$apt/prefs.d";
Acquire::Languages "none";
APT::Sandbox::User "root";
CONF
export APT_CONFIG=$apt/apt.conf
echo "fetch-kernel: arm64 kernel from trixie-backports" >&2
apt-get update -qq
# The meta package depends on the current versioned package: linux-modules-<abi>-arm64.
abi=$(apt-cache depends linux-modules-arm64 | sed -n 's/^ *Depends: linux-modules-\(.*\)-arm64$/\1/p' | head -1)
if [ -z "$abi" ]; then
  echo "fetch-kernel: no linux-modules-<abi>-arm64 in linux-modules-arm64's Depends" >&2
  exit 1
fi
cd "$out/tmp"
apt-get download -qq "linux-binary-$abi-arm64" "linux-modules-$abi-arm64"
for deb in linux-binary-*.deb; do dpkg-deb --fsys-tarfile "$deb" | tar -x --wildcards '*/vmlinuz*'; done
for deb in linux-modules-*.deb; do dpkg-deb --fsys-tarfile "$deb" | tar -x --wildcards '*/configfs.ko.xz' '*/gpio-sim.ko.xz'; done
vmlinuz=$(find . -name 'vmlinuz*' -type f | head -1)
[ -n "$vmlinuz" ] || { echo "fetch-kernel: no vmlinuz in linux-binary-$abi-arm64" >&2; exit 1; }
gzip -9 -c "$vmlinuz" > "$out/vmlinuz.gz.new"
for m in configfs gpio-sim; do
  f=$(find . -name "$m.ko.xz" | head -1)
  [ -n "$f" ] || { echo "fetch-kernel: no $m.ko.xz in linux-modules-$abi-arm64" >&2; exit 1; }
  cp "$f" "$out/$m.ko.xz"
done
mv "$out/vmlinuz.gz.new" "$out/vmlinuz.gz"
echo "$abi" > "$out/abi"
cd "$out"
rm -rf "$out/tmp" "$apt/cache/archives"/*.deb
echo "fetch-kernel: $abi in $out" >&2
