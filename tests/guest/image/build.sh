#!/bin/bash
# tests/guest/image/build.sh OUT [SUITE] - a Debian guest for dockgate's real-Linux test bed:
# SUITE bookworm (Debian 12, the default) or trixie (Debian 13).
#
# Writes into OUT (normally .cache/guest/<key>/, see tests/guest/guestlib.py):
#   rootfs/       the mmdebstrap tree (systemd-nspawn runs tests/test_package.py in copies of it)
#   rootfs.img    raw ext4 of the same tree (no partition table: QEMU's /dev/vda)
#   vmlinuz, initrd.img   for qemu -kernel/-initrd
#   id_ed25519    ssh key; its public half is root's authorized_keys in the guest
#   ok            written last: the build finished
# Needs root, mmdebstrap, e2fsprogs, openssh-client. Exits non-zero on any failure.
#
# No mirror host is named here: the host's own apt sources file is the MIRROR argument
# (mmdebstrap copies it into the guest) and the host's apt options that make its sources
# reachable (proxy, Check-Valid-Until for snapshots) are passed with --aptopt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build.sh OUTDIR [bookworm|trixie]}
SUITE=${2:-bookworm}
IMG_SIZE=${IMG_SIZE:-4G}  # sparse; dockgate keeps 1 GiB free in staging

# print-packages: the list is part of the cache key (guestlib.py hashes this file)
PACKAGES=(
  adduser init-system-helpers libusb-1.0-0 openssl python3 systemd udev   # dockgate's Depends
  dbus systemd-sysv                  # systemd as PID 1; systemctl poweroff needs D-Bus
  initramfs-tools linux-image-amd64  # 6.1 / 6.12: dummy_hcd, libcomposite, usb_f_mass_storage, usb_f_fs
  kmod procps iproute2 usbutils      # modprobe, pgrep, ip, lsusb
  dosfstools mtools                  # recorder volumes made in the guest (mkfs.vfat, mcopy)
  openssh-server                     # the harness drives the guest over ssh
)
[ "${1:-}" = --print-packages ] && { printf '%s\n' "${PACKAGES[@]}" | sort; exit 0; }
PKGS=$(printf '%s\n' "${PACKAGES[@]}" | sort | paste -sd, -)

if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  SOURCES=/etc/apt/sources.list.d/debian.sources
else
  SOURCES=/etc/apt/sources.list
fi
HOST_SUITE=$(. /etc/os-release && echo "$VERSION_CODENAME")
if [ "$SUITE" != "$HOST_SUITE" ]; then
  # the same mirrors as the host's, for the other release (bookworm-security -> trixie-security, ...)
  sed "s/\b$HOST_SUITE\b/$SUITE/g" "$SOURCES" > "$OUT.sources"
  SOURCES="$OUT.sources"
fi
APTOPTS=()
for f in /etc/apt/apt.conf.d/*; do
  if grep -qE 'Acquire::(http|https)::Proxy|Check-Valid-Until' "$f" 2>/dev/null; then
    APTOPTS+=(--aptopt="$f")
  fi
done

rm -rf "$OUT"
mkdir -p "$OUT"
[ "$SOURCES" != "$OUT.sources" ] || { mv "$OUT.sources" "$OUT/sources"; SOURCES="$OUT/sources"; }
ssh-keygen -q -t ed25519 -N '' -C dockgate-testbed -f "$OUT/id_ed25519"
ROOT="$OUT/rootfs"

start=$(date +%s.%N)
# --variant=apt: Essential + apt only. Recommends off (the kernel would pull firmware).
# Hooks run on the host with the chroot as $1.
mmdebstrap \
  --quiet \
  --variant=apt \
  --aptopt='APT::Install-Recommends "false"' \
  "${APTOPTS[@]}" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --include="$PKGS" \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"; printf "MODULES=list\nCOMPRESS=gzip\n" > "$1/etc/initramfs-tools/conf.d/testbed.conf"' \
  --customize-hook='printf "virtio_pci\nvirtio_blk\next4\n" >> "$1/etc/initramfs-tools/modules"' \
  --customize-hook='chroot "$1" update-initramfs -u -k all' \
  --customize-hook="$HERE/customize.sh \"\$1\" \"$OUT/id_ed25519.pub\"" \
  --customize-hook='cp -L "$1/vmlinuz" "'"$OUT"'/vmlinuz"; cp -L "$1/initrd.img" "'"$OUT"'/initrd.img"' \
  "$SUITE" "$ROOT" "$SOURCES"
mid=$(date +%s.%N)
# ext4 straight from the directory: no loop device, no mount
mke2fs -q -t ext4 -L testbed-root -d "$ROOT" "$OUT/rootfs.img" "$IMG_SIZE"
end=$(date +%s.%N)
printf 'image: mmdebstrap %.1f s, mke2fs %.1f s\n' "$(echo "$mid - $start" | bc)" "$(echo "$end - $mid" | bc)"
touch "$OUT/ok"
