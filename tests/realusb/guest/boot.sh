#!/usr/bin/env bash
# One guest run, started by init.sh: load the USB modules, start udevd when asked, bring up
# the emulated boards (guest.gadget), wait until the guest's USB host has enumerated them, run
# the scenario, stop the gadget (which writes its reports), and leave everything in RUN/out.
#
#   boot.sh CACHE GUEST RUN
#
# RUN/run.env (written by harness.py) sets UDCS (one per board and one per bridge), DEVICES
# (how many are on the bus at power-on), UDEV (1: run udevd) and SCENARIO_TIMEOUT (seconds); RUN/gadget.json describes the boards; RUN/scenario.sh is the
# scenario, sourced after lib.sh. Every wait here has a deadline.
set -uo pipefail

cache=$1
guest=$2
run=$3
out="$run/out"
mkdir -p "$out"
# shellcheck source=/dev/null
source "$run/run.env"
export PATH="$cache/venv/bin:/usr/sbin:/usr/bin" HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
export OUT="$out" INPUTS="$run/inputs"

mark() { printf '%s %s\n' "$1" "$(cut -d' ' -f1 /proc/uptime)" >>"$out/timeline"; }
note() { printf 'boot: %s\n' "$*" | tee -a "$out/boot.log"; }
# wait_for SECONDS COMMAND...: poll every 50 ms until COMMAND succeeds; false at the deadline.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}
finish() {
    dmesg >"$out/dmesg.log"
    mark finished
    sync
    exit "$1"
}

mark boot
modprobe -d "$cache/kernel" -a configfs libcomposite usb_f_fs usb_f_acm cdc_acm \
    || { note "modprobe failed"; finish 1; }
modprobe -d "$cache/kernel" dummy_hcd "num=$UDCS" || { note "dummy_hcd failed"; finish 1; }
mount -t configfs none /sys/kernel/config
mark modules

if ((UDEV)); then
    # A desktop's udevd: Debian's default rules (device node modes) and the host's own rules
    # from /usr/lib/udev/rules.d. No rule for Espressif boards: non-root users get no access.
    mkdir -p /run/udev/rules.d
    cp "$cache"/udev/rules.d/* /run/udev/rules.d/
    "$cache/udev/bin/systemd-udevd" --daemon --resolve-names=never 2>>"$out/udevd.log" \
        || { note "udevd did not start"; finish 1; }
    "$cache/udev/bin/udevadm" trigger --action=add
    "$cache/udev/bin/udevadm" settle --timeout=20 || note "udevadm settle timed out"
    mark udevd
    export UDEVADM="$cache/udev/bin/udevadm"
fi

{
    cd "$(dirname "$guest")" && python3 -m guest.gadget "$run/gadget.json" "$out" \
        >"$out/gadget.log" 2>&1
    printf '%s\n' "$?" >"$out/gadget.rc"
} &
if ! wait_for 60 test -e "$out/boards.json"; then
    note "the gadget did not come up"
    cat "$out/gadget.log"
    finish 1
fi
mark gadget
# shellcheck disable=SC2317 # called by wait_for
configured() { # every device enumerated and configured by the guest's USB host
    local device vendor count=0
    for device in /sys/bus/usb/devices/*; do
        vendor=$(cat "$device/idVendor" 2>/dev/null) || continue
        [[ $vendor == 1d6b ]] && continue # a root hub
        [[ -n "$(cat "$device/bConfigurationValue" 2>/dev/null)" ]] && count=$((count + 1))
    done
    ((count == DEVICES))
}
wait_for 30 configured || note "not every device was configured"
if ((UDEV)); then
    "$cache/udev/bin/udevadm" settle --timeout=20 || note "udevadm settle timed out"
fi
mark ready

# shellcheck disable=SC2016 # expanded by that bash
timeout -k 5 "$SCENARIO_TIMEOUT" bash -c 'source "$1/lib.sh" && source "$2/scenario.sh"' \
    scenario "$guest" "$run" >"$out/scenario.log" 2>&1
printf '%s\n' "$?" >"$out/scenario.rc"
mark scenario

# The gadget writes its reports when told to stop (its pid is in boards.json's folder).
gadget=$(cat "$out/gadget.pid")
kill -TERM "$gadget"
wait_for 30 test -e "$out/gadget.rc" || {
    note "the gadget did not stop in 30 s; killing it"
    kill -KILL "$gadget"
    wait_for 5 test -e "$out/gadget.rc"
}
finish 0
