"""Virtual boards under the real USB stack, for tests: a bus, the Usb world on it, a dfu.bin."""

from __future__ import annotations

import random
from dataclasses import dataclass

from espdfu.chips import chip_by_name
from espdfu.files import dfufile
from espdfu.files.dfufile import DfuImage, FlashFile
from espdfu.sim import SimBus, TimeModel, VirtualBoard, virtual_usb
from espdfu.usb.boards import Board, classify
from espdfu.usb.transport import Usb

KIB = 1024


@dataclass
class World:
    usb: Usb
    bus: SimBus

    def board(self, path: str) -> VirtualBoard:
        return self.bus.board(path)

    @property
    def paths(self) -> list[str]:
        return list(self.bus.boards)

    def scan(self, path: str) -> Board:
        """The board at ``path`` as discovery sees it now."""
        device = self.usb.find(path)
        board = classify(device) if device is not None else None
        assert board is not None, f"no board at {path}"
        return board


def world(spec: str, time: TimeModel | None = None) -> World:
    bus = SimBus.from_spec(spec, time=time or TimeModel.instant())
    return World(virtual_usb(bus, f"virtual boards ({spec})"), bus)


def image_files(seed: int = 1, app_size: int = 40 * KIB) -> list[FlashFile]:
    rng = random.Random(seed)
    return [
        FlashFile(0x1000, "bootloader.bin", rng.randbytes(3 * KIB + 17)),
        FlashFile(0x8000, "partition-table.bin", rng.randbytes(3 * KIB)),
        FlashFile(0x10000, "app.bin", rng.randbytes(app_size)),
    ]


def image(chip: str = "esp32s2", files: list[FlashFile] | None = None, **kwargs: int) -> DfuImage:
    found = chip_by_name(chip)
    pid = found.dfu_pid if found else int(chip, 16)
    data = dfufile.pack(files or image_files(), pid=pid, **kwargs)
    return dfufile.parse(data)


def assert_flashed(board: VirtualBoard, files: list[FlashFile]) -> None:
    """Every file is in the virtual flash at its address."""
    for file in files:
        assert board.read_flash(file.address, len(file.data)) == file.data, file.name
