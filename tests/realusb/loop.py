"""The no-hands loop's run in the guest, shared by its tests (test_bridge.py) and its timing
(benchmarks/bench_loop_realusb.py).

Boards 0 and 1 are DevKits (a USB-UART bridge on a USB port of their own, wired to EN and
GPIO0) that power on running their apps, the old build (1's app panics at every start), armed
in `espdfu watch`, which sees a new dfu.bin, resets both into download mode through their
bridges, flashes them, resets them into their apps and reads their boots. Then `espdfu flash
--verify` on board 2, put in download mode by hand, whose partition table boots an app elsewhere
than the app-only file writes it (another build runs), and on board 3, which has no bridge and
no console (nothing says which build runs).
"""

from __future__ import annotations

import time
from dataclasses import replace

from espdfu.chips import chip_by_name
from espdfu.demo.project import PARTITIONS, app_image, bootloader_image
from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile
from espdfu.files.partitions import write_table
from tests.realusb.harness import KIB, MIB, BoardSpec, GuestRun

BUILT = time.gmtime(1_765_000_000)


def build(version: str, app_at: int = 0x10000) -> tuple[FlashFile, ...]:
    """An ESP32-S2 build as `idf.py dfu` packs it: bootloader, partition table (its factory
    app at ``app_at``) and an app whose esp_app_desc_t names ``version``."""
    factory = replace(PARTITIONS[-1], offset=app_at)
    return (
        FlashFile(0x1000, "bootloader.bin", bootloader_image()),
        FlashFile(0x8000, "partition-table.bin", write_table([*PARTITIONS[:-1], factory])),
        FlashFile(app_at, "app.bin", app_image(version, BUILT, 64 * KIB)),
    )


def dfu_bin(files: tuple[FlashFile, ...]) -> bytes:
    chip = chip_by_name("esp32s2")
    assert chip is not None
    return dfufile.pack(files, pid=chip.dfu_pid, flash_size=4 * MIB)


OLD, NEW = build("1.0"), build("2.0")
ELSEWHERE = build("1.0", app_at=0x20000)
"""A board whose partition table puts its factory app at 0x20000."""

SCENARIO = """
mkdir -p /tmp/watch /tmp/other /tmp/none /tmp/project/build
consoles 0 1 >/tmp/watch/config.toml
consoles 2 >/tmp/other/config.toml
cd /tmp/project || exit 1
export ESPDFU_CONFIG_DIR=/tmp/watch
start watch espdfu watch /tmp/project/build -p "$(board_path 0)" -p "$(board_path 1)"
wait_text "$OUT/steps/watch.out" "$(board_path 0): console on" 60
wait_text "$OUT/steps/watch.out" "$(board_path 1): console on" 60
cut -d' ' -f1 /proc/uptime >"$OUT/new_at"
cp "$INPUTS/new.dfu.bin" build/dfu.bin.tmp && mv build/dfu.bin.tmp build/dfu.bin
wait_text "$OUT/steps/watch.out" "$(board_path 0): verified" 180
cut -d' ' -f1 /proc/uptime >"$OUT/verified_at"
wait_text "$OUT/steps/watch.out" "$(board_path 1): the build flashed here did not boot" 60
stop watch
gadget replug 2
export ESPDFU_CONFIG_DIR=/tmp/other
step other espdfu flash "$INPUTS/app.dfu.bin" -p "$(board_path 2)" --verify 20 --json
export ESPDFU_CONFIG_DIR=/tmp/none
step no_console espdfu flash "$INPUTS/app.dfu.bin" -p "$(board_path 3)" --verify 5 --json
"""


BOARDS = (
    BoardSpec(bridge=True, start="app", preload=OLD),
    BoardSpec(bridge=True, start="app", preload=OLD, app="panic"),
    BoardSpec(bridge=True, start="app", preload=ELSEWHERE),
    BoardSpec(),
)
INPUTS = {"new.dfu.bin": dfu_bin(NEW), "app.dfu.bin": dfu_bin(NEW[-1:])}


def parts(run: GuestRun) -> dict[str, float]:
    """Board 0's loop in seconds of the guest's clock, part by part, from the new dfu.bin's
    arrival to the line that says it runs: the watcher seeing the file, the reset into
    download mode, DETACH and the way back to the first block, the download, the reset into
    the app, and its boot read and checked."""
    out = run.folder / "out"
    new_at = float((out / "new_at").read_text())
    verified_at = float((out / "verified_at").read_text())
    events = [event for event in run.boards[0].report["events"] if event["at"] >= new_at]
    marks = [(event.get("mode") or event["event"], event["at"]) for event in events]
    (download,) = [d for d in run.boards[0].downloads if d["started"] >= new_at]
    held = [at for what, at in marks if what == "reset held"]
    rom = next(at for what, at in marks if what == "rom")
    booted = next(at for what, at in marks if what == "app booted")
    return {
        "dfu.bin seen": held[0] - new_at,
        "into download mode": rom - held[0],
        "DETACH, DFU mode, first block": download["started"] - rom,
        "download": download["ended"] - download["started"],
        "reset into the app": booted - download["ended"],
        "boot read and verified": verified_at - booted,
        "whole loop": verified_at - new_at,
    }
