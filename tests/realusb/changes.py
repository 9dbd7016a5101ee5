"""Only the changes, through a real USB stack: the guest's run shared by its tests
(test_changes.py) and its timing (benchmarks/bench_changes_realusb.py).

Four ESP32-S2 boards power on holding an earlier build. `espdfu flash NEW --diff-with OLD
--verify` goes to a DevKit (its USB-UART bridge resets it and reads its boot) that holds OLD
(``changes``), and to one that holds another build (``wrong_base``: its boot after the changes
shows it, and the whole file follows); without --verify the whole file goes to a board in
download mode (``unchecked``); and the whole of NEW goes to a fourth DevKit that holds OLD too
(``whole``), for the time the changes save.
"""

from __future__ import annotations

import time

from espdfu.chips import chip_by_name
from espdfu.demo.project import PARTITIONS, app_image, bootloader_image
from espdfu.files import dfufile
from espdfu.files.dfufile import SECTOR_SIZE, FlashFile
from espdfu.files.partitions import write_table
from espdfu.sim.receiver import Receiver
from tests.realusb.harness import KIB, MIB, BoardSpec

BUILT = time.gmtime(1_765_000_000)
APP_SIZE = 256 * KIB
NVS_AT, NVS_SIZE = 0x9000, 0x6000


def build(version: str, seed: int = 0) -> tuple[FlashFile, ...]:
    """An ESP32-S2 build as `idf.py dfu` packs a project with an NVS image: builds of one
    ``seed`` differ by a same-size edit of their code (espdfu.demo.project.app_image)."""
    return (
        FlashFile(0x1000, "bootloader.bin", bootloader_image()),
        FlashFile(0x8000, "partition-table.bin", write_table(PARTITIONS)),
        FlashFile(NVS_AT, "nvs.bin", bytes([seed]) * NVS_SIZE),
        FlashFile(0x10000, "app.bin", app_image(version, BUILT, APP_SIZE, seed=seed)),
    )


def dfu_bin(files: tuple[FlashFile, ...]) -> bytes:
    chip = chip_by_name("esp32s2")
    assert chip is not None
    return dfufile.pack(files, pid=chip.dfu_pid, flash_size=4 * MIB)


OLD, NEW, OTHER = build("1.0"), build("2.0"), build("7.0", seed=7)


def flash_after(preload: tuple[FlashFile, ...], *flashes: bytes) -> bytes:
    """A board's flash once it held ``preload`` (as the gadget preloads it: each file's sectors
    erased, then written) and took each dfu.bin of ``flashes`` whole, as the ROM writes them."""
    flash = bytearray(4 * MIB)
    for file in preload:
        end = -(-(file.address + len(file.data)) // SECTOR_SIZE) * SECTOR_SIZE
        flash[file.address : end] = b"\xff" * (end - file.address)
        flash[file.address : file.address + len(file.data)] = file.data
    for data in flashes:
        receiver = Receiver(flash)
        receiver.feed(data[: -dfufile.SUFFIX_LEN])
        assert receiver.complete
    return bytes(flash)


SCENARIO = """
mkdir -p /tmp/linked /tmp/none
consoles 0 1 3 >/tmp/linked/config.toml
new="$INPUTS/new.dfu.bin"
old="$INPUTS/old.dfu.bin"
export ESPDFU_CONFIG_DIR=/tmp/linked
step changes espdfu flash "$new" -p "$(board_path 0)" --diff-with "$old" --verify 20 --json
step wrong_base espdfu flash "$new" -p "$(board_path 1)" --diff-with "$old" --verify 20 --json
step whole espdfu flash "$new" -p "$(board_path 3)" --verify 20 --json
export ESPDFU_CONFIG_DIR=/tmp/none
step unchecked espdfu flash "$new" -p "$(board_path 2)" --diff-with "$old" --json
"""

BOARDS = (
    BoardSpec(bridge=True, start="app", preload=OLD),
    BoardSpec(bridge=True, start="app", preload=OTHER),
    BoardSpec(preload=OLD),
    BoardSpec(bridge=True, start="app", preload=OLD),
)
INPUTS = {"new.dfu.bin": dfu_bin(NEW), "old.dfu.bin": dfu_bin(OLD)}
