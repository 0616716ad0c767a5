#!/bin/bash
# boot.sh - start the test-bed guest headless and wait until it is usable.
#
#   ACCEL=kvm|tcg|auto  RUN=./run  ./boot.sh
#
# - direct kernel boot (-kernel/-initrd copied out of the image by build-image.sh),
#   no bootloader, no firmware menu;
# - root disk = a qcow2 overlay on top of out/rootfs.img, so the cached base image is
#   never written and every boot starts clean (delete $RUN to forget the overlay);
# - $RUN/share is exported read-write over virtio-9p, mounted at /mnt/host in the guest;
# - user-mode networking (slirp) with ssh forwarded to 127.0.0.1:$SSH_PORT;
# - serial console logged to $RUN/console.log; QEMU monitor on $RUN/monitor.sock.
# Prints: time to "TESTBED-READY" (multi-user.target reached, from the guest's
# testbed-ready.service) and time until ssh answers. Exits non-zero on failure.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/out}
RUN=${RUN:-$HERE/run}
ACCEL=${ACCEL:-auto}
MEM=${MEM:-1024}
SMP=${SMP:-2}
TIMEOUT=${TIMEOUT:-600}
CACHE=${CACHE:-writeback}   # 'unsafe' is faster but a killed QEMU then corrupts the qcow2 overlay

if [ "$ACCEL" = auto ]; then
  # /dev/kvm can exist, open, and even create VMs, and still not run a guest (seen on this
  # nested host: QEMU aborts on MSR 0x10a with -cpu host; with -arch-capabilities the guest
  # spins forever in the kernel decompressor). So probe by booting the real kernel until it
  # prints "Linux version" (well under 1 s on working KVM) with a 10 s budget.
  ACCEL=tcg
  if [ -w /dev/kvm ]; then
    probe=$(mktemp)
    ( timeout 10 qemu-system-x86_64 -accel kvm -cpu host -machine q35 -m 256 -nodefaults -display none \
      -kernel "$OUT/vmlinuz" -append "console=ttyS0 earlyprintk=ttyS0 panic=-1" -no-reboot \
      -serial file:"$probe" </dev/null ) >/dev/null 2>&1 &
    ppid=$!
    for _ in $(seq 100); do
      grep -q 'Linux version' "$probe" 2>/dev/null && { ACCEL=kvm; break; }
      kill -0 $ppid 2>/dev/null || break; sleep 0.1
    done
    kill $ppid 2>/dev/null || true; wait $ppid 2>/dev/null || true; rm -f "$probe"
  fi
  echo "accel auto -> $ACCEL"
fi
case $ACCEL in
  kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
  tcg) ACCEL_ARGS=(-accel tcg,thread=multi -cpu max) ;;
  *) echo "ACCEL must be kvm, tcg or auto" >&2; exit 2 ;;
esac

mkdir -p "$RUN/share"
rm -f "$RUN/console.log" "$RUN/qemu.pid" "$RUN/monitor.sock"
# REUSE=1 keeps the overlay of the previous boot (reboot after a power cut); default: fresh
if [ "${REUSE:-0}" != 1 ] || [ ! -f "$RUN/overlay.qcow2" ]; then
  qemu-img create -q -f qcow2 -b "$OUT/rootfs.img" -F raw "$RUN/overlay.qcow2"
fi
# SHARE=0 drops the 9p export: a mounted virtio-9p export blocks savevm/migration
SHARE_ARGS=(-virtfs local,path="$RUN/share",mount_tag=hostshare,security_model=none,id=hostshare)
[ "${SHARE:-1}" = 1 ] || SHARE_ARGS=()
# LOADVM=name resumes a snapshot saved (savevm) inside overlay.qcow2 instead of booting
LOADVM_ARGS=()
[ -z "${LOADVM:-}" ] || LOADVM_ARGS=(-loadvm "$LOADVM")
# free TCP port for the ssh forward
SSH_PORT=${SSH_PORT:-$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')}
echo "$SSH_PORT" > "$RUN/ssh-port"
echo "$ACCEL" > "$RUN/accel"

start=$(date +%s.%N)
qemu-system-x86_64 \
  "${ACCEL_ARGS[@]}" \
  -machine q35 -smp "$SMP" -m "$MEM" \
  -nodefaults -display none -no-reboot \
  -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img" \
  -append "console=ttyS0,115200 root=/dev/vda rw panic=-1 ${APPEND:-}" \
  -drive file="$RUN/overlay.qcow2",if=virtio,format=qcow2,cache="$CACHE",discard=unmap \
  "${SHARE_ARGS[@]}" "${LOADVM_ARGS[@]}" \
  -netdev user,id=n0,hostfwd=tcp:127.0.0.1:"$SSH_PORT"-:22 -device virtio-net-pci,netdev=n0 \
  -device virtio-rng-pci \
  -serial file:"$RUN/console.log" \
  -monitor unix:"$RUN/monitor.sock",server=on,wait=off \
  -pidfile "$RUN/qemu.pid" -daemonize

ssh_ok() {
  ssh -i "$OUT/id_ed25519" -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o LogLevel=ERROR -o ConnectTimeout=5 -o BatchMode=yes root@127.0.0.1 true 2>/dev/null
}
ready=""
while :; do
  now=$(date +%s.%N); el=$(echo "$now - $start" | bc)
  if [ -z "$ready" ] && [ -n "${LOADVM:-}" ]; then ready=0; fi   # resumed: nothing boots
  if [ -z "$ready" ] && grep -q TESTBED-READY "$RUN/console.log" 2>/dev/null; then
    ready=$el
    printf 'multi-user.target after %.1f s (%s)\n' "$ready" "$(grep -a -o 'TESTBED-READY.*' "$RUN/console.log" | tr -d '\r')"
  fi
  if [ -n "$ready" ] && ssh_ok; then
    cpu=$(ps -o times= -p "$(cat "$RUN/qemu.pid")" | tr -d ' ')
    printf 'ssh answers after %.1f s (accel=%s, QEMU used %s s of CPU)\n' "$el" "$ACCEL" "$cpu"; break
  fi
  if ! kill -0 "$(cat "$RUN/qemu.pid" 2>/dev/null)" 2>/dev/null; then
    echo "QEMU exited during boot; console:" >&2; tail -30 "$RUN/console.log" >&2; exit 1
  fi
  if [ "$(echo "$el > $TIMEOUT" | bc)" = 1 ]; then
    echo "guest not ready after $TIMEOUT s; console tail:" >&2; tail -30 "$RUN/console.log" >&2; exit 1
  fi
  sleep 0.5
done
