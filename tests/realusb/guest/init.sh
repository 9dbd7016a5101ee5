#!/bb/busybox sh
# shellcheck shell=dash
# The guest's /init (baked into the initramfs by setup.sh): mount the shares, run boot.sh,
# power off. Kept small so that changing the test tier rarely means rebuilding the initramfs:
# everything else lives in boot.sh, read from the shared guest/ folder at each boot.
#
# The host shares over virtio-9p: its /usr and /etc (read-only: the guest runs the host's
# programs and libraries), the cache from setup.sh (read-only), this guest/ folder
# (read-only) and the run folder (read-write). The last three are mounted at the paths they
# have on the host, given on the kernel command line, so that the venv's scripts (whose
# first line names the venv's python by its host path) run as they are.
B=/bb/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B mount -t tmpfs tmpfs /tmp
$B mount -t tmpfs tmpfs /run
$B mount -t tmpfs tmpfs /var
for module in $($B cat /modules/order); do
    $B insmod "/modules/$module.ko" || echo "init: insmod $module failed"
done

param() { $B sed -n "s/.*espdfu\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
share() { # TAG PATH OPTIONS
    $B mkdir -p "$2" && $B mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$3" "$1" "$2"
}
cache=$(param cache)
guest=$(param guest)
run=$(param run)
share usr /usr ro,cache=loose
share etc /etc ro,cache=loose
share cache "$cache" ro,cache=loose
share guest "$guest" ro
share run "$run" rw

if [ -f "$guest/boot.sh" ] && [ -d "$run" ]; then
    PATH=/usr/sbin:/usr/bin HOME=/root LANG=C.UTF-8 \
        /usr/bin/bash "$guest/boot.sh" "$cache" "$guest" "$run"
    echo "init: boot.sh exited with $?"
else
    echo "init: the shares could not be mounted (cache=$cache guest=$guest run=$run)"
fi
$B sync
$B poweroff -f
