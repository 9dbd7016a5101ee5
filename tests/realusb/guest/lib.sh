# shellcheck shell=bash
# Helpers for scenarios: boot.sh sources this, then RUN/scenario.sh, in one bash, with OUT
# (the output folder) and INPUTS (the files the harness put there) set.
#
#   step NAME COMMAND...      run COMMAND (deadline: STEP_TIMEOUT, 120 s by default); keep its
#                             stdout, stderr, exit code, times and CPU time in out/steps/NAME.*
#   start NAME COMMAND...     the same, in the background; `stop NAME [SIGNAL]` ends it,
#                             `finish NAME` waits for it to end by itself
#   gadget ACTION BOARD       replug board BOARD (in ROM download mode: BOOT held), reset it
#                             (into its app), unplug it, or wipe its flash (zero bytes);
#                             returns once the guest's host has seen the change
#   board_path BOARD          the USB port path of board BOARD, as the guest's host sees it
#   bridge_path BOARD         the USB port path of board BOARD's USB-UART bridge
#   consoles BOARD ...        a config.toml's [consoles] table linking each BOARD to its bridge
#   wait_text FILE TEXT SECS  wait until FILE holds TEXT
#   wait_configured SYSFS_DEVICE SECS   wait until the device is configured
#
# Every wait has a deadline; a step that misses it is killed (exit code 124, as timeout(1)).

steps="$OUT/steps"
mkdir -p "$steps"

_uptime() { cut -d' ' -f1 /proc/uptime; }

_record() { # NAME RC START
    printf '{"name": "%s", "rc": %d, "start": %s, "end": %s}\n' "$1" "$2" "$3" "$(_uptime)" \
        >"$steps/$1.json"
}

step() {
    local name=$1 start rc TIMEFORMAT='%U %S'
    shift
    start=$(_uptime)
    { time timeout -k 5 "${STEP_TIMEOUT:-120}" "$@" >"$steps/$name.out" 2>"$steps/$name.err"; } \
        2>"$steps/$name.cpu"
    rc=$?
    _record "$name" "$rc" "$start"
    return "$rc"
}

declare -A _started=() _start_times=()
start() {
    local name=$1
    shift
    _start_times[$name]=$(_uptime)
    timeout -k 5 "${STEP_TIMEOUT:-120}" "$@" >"$steps/$name.out" 2>"$steps/$name.err" &
    _started[$name]=$!
}

# A background command ignores SIGINT (bash sets it so without job control): TERM by default.
stop() { # NAME [SIGNAL]: signal the command (not its timeout wrapper) and wait for it
    local name=$1 signal=${2:-TERM} rc
    pkill "-$signal" -P "${_started[$name]}"
    wait "${_started[$name]}"
    rc=$?
    _record "$name" "$rc" "${_start_times[$name]}"
    return "$rc"
}

finish() { # NAME: wait for a command started with `start` to end by itself
    local name=$1 rc
    wait "${_started[$name]}"
    rc=$?
    _record "$name" "$rc" "${_start_times[$name]}"
    return "$rc"
}

wait_text() { # FILE TEXT SECONDS
    local deadline=$((SECONDS + $3))
    until grep -qF -- "$2" "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

_request=0
gadget() { # ACTION BOARD: the gadget acknowledges each request once it is done
    _request=$((_request + 1))
    # shellcheck disable=SC2016 # expanded by that bash
    timeout 10 bash -c 'printf "%s\n" "$1" >/run/gadget.ctl' _ "$_request $1 $2" || return 1
    local deadline=$((SECONDS + 10))
    until [[ "$(cat /run/gadget.ack 2>/dev/null)" == "$_request "* ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
    [[ "$(cat /run/gadget.ack)" == "$_request ok" ]] || return 1
    # Return once the guest's host has seen it (and udevd, if running, has handled it).
    local device
    device="/sys/bus/usb/devices/$(board_path "$2")"
    case $1 in
    replug) wait_configured "$device" 10 || return 1 ;;
    unplug) _wait_gone "$device" 10 || return 1 ;;
    esac
    [[ -z "${UDEVADM:-}" ]] || "$UDEVADM" settle --timeout=10
}

wait_configured() { # SYSFS_DEVICE SECONDS
    local deadline=$((SECONDS + $2))
    until [[ -n "$(cat "$1/bConfigurationValue" 2>/dev/null)" ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

_wait_gone() { # SYSFS_DEVICE SECONDS
    local deadline=$((SECONDS + $2))
    while [[ -e "$1" ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

board_path() { _board "$1" path; }
bridge_path() { _board "$1" bridge; }
consoles() {
    echo '[consoles]'
    for board in "$@"; do printf '"%s" = "%s"\n' "$(board_path "$board")" "$(bridge_path "$board")"; done
}
_board() { # BOARD KEY
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])][sys.argv[3]])' \
        "$OUT/boards.json" "$1" "$2"
}
