#!/bin/bash
# gadget.sh - simulated recorders through the guest kernel's USB gadget stack.
# Runs INSIDE the guest, as root. The "docking station" is the guest's own USB host
# side: dummy_hcd provides a virtual UDC (dummy_udc.N) wired to a virtual root hub,
# so a gadget bound to dummy_udc.N shows up exactly like a device plugged into a port
# (usb-storage, sd, block uevents, udev rules, systemd .device units...).
#
#   gadget.sh init [SLOTS]                      modprobe dummy_hcd num=SLOTS, libcomposite
#   gadget.sh mkimg IMG [SIZE_MB] [LABEL] [SRC] whole-disk FAT image, SRC's content copied in
#   gadget.sh plug NAME IMG VID PID SERIAL [SLOT] [ro]   create a mass-storage gadget, bind it
#   gadget.sh unplug NAME                        unbind (hot-unplug), keep the gadget
#   gadget.sh replug NAME [SLOT]                 bind again
#   gadget.sh remove NAME                        unbind and delete the gadget
set -euo pipefail
G=/sys/kernel/config/usb_gadget

cmd=${1:?usage}; shift
case $cmd in
init)
  slots=${1:-1}
  # num= gives several independent UDC/root-hub pairs = several dock slots.
  lsmod | grep -q '^dummy_hcd' || modprobe dummy_hcd num="$slots"
  modprobe libcomposite
  modprobe usb_f_mass_storage
  mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
  ls /sys/class/udc
  ;;
mkimg)
  # whole-disk FAT (no partition table), like many recorders; -I: allow the whole device.
  # SRC: a folder to copy in (`dockgate sim make DIR` writes DIR/storage/DCIM/<date>/...)
  img=$1 size=${2:-64} label=${3:-RECORDER} src=${4:-}
  rm -f "$img"; truncate -s "${size}M" "$img"
  mkfs.vfat -I -n "$label" "$img" >/dev/null
  if [ -n "$src" ]; then
    mcopy -s -m -i "$img" "$src"/* ::/
  fi
  ;;
plug)
  name=$1 img=$2 vid=$3 pid=$4 serial=$5 slot=${6:-0} ro=${7:-0}
  d=$G/$name
  mkdir "$d"
  echo "$vid" > "$d/idVendor"; echo "$pid" > "$d/idProduct"
  echo 0x0100 > "$d/bcdDevice"; echo 0x0200 > "$d/bcdUSB"
  mkdir "$d/strings/0x409"
  echo "$serial"         > "$d/strings/0x409/serialnumber"
  echo "Dockgate Sim"    > "$d/strings/0x409/manufacturer"
  echo "Sim Recorder"    > "$d/strings/0x409/product"
  mkdir "$d/functions/mass_storage.0"
  f=$d/functions/mass_storage.0
  echo 1 > "$f/stall"
  echo 1 > "$f/lun.0/removable"
  echo "$ro" > "$f/lun.0/ro"
  # SCSI INQUIRY vendor(8)/product(16)/revision(4): udev's ID_VENDOR/ID_MODEL and the
  # /dev/disk/by-id/usb-<vendor>_<model>_<serial>-0:0 name come from here, not from the USB strings
  printf '%-8.8s%-16.16s%-4.4s' "${INQ_VENDOR:-SIMCAM}" "${INQ_PRODUCT:-Sim Recorder}" 0100 > "$f/lun.0/inquiry_string"
  echo "$img" > "$f/lun.0/file"
  mkdir "$d/configs/c.1"
  echo 100 > "$d/configs/c.1/MaxPower"
  ln -s "$f" "$d/configs/c.1/"
  echo "dummy_udc.$slot" > "$d/UDC"          # <- the "plug in"
  ;;
unplug)
  echo "" > "$G/$1/UDC"                       # <- the "pull out" (disconnect on the bus)
  ;;
replug)
  echo "dummy_udc.${2:-0}" > "$G/$1/UDC"
  ;;
remove)
  d=$G/$1
  [ -n "$(cat "$d/UDC" 2>/dev/null)" ] && echo "" > "$d/UDC"
  rm -f "$d"/configs/c.1/mass_storage.0 "$d"/configs/c.1/ffs.* 2>/dev/null || true
  rmdir "$d"/configs/c.1/strings/0x409 2>/dev/null || true
  # a FunctionFS instance can only go once its functionfs mount is gone
  for m in $(findmnt -rn -t functionfs -o TARGET,SOURCE | awk -v n="$1" '$2==n{print $1}'); do umount "$m"; done
  rmdir "$d"/configs/c.1 "$d"/functions/* "$d"/strings/0x409 "$d"
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
