"""The chip table: every fact about a chip that the rest of the project needs, in one place."""

from __future__ import annotations

from dataclasses import dataclass

ESPRESSIF_VID = 0x303A
ANY_PID = 0xFFFF
"""A dfu.bin whose suffix carries this PID may be sent to any device."""


@dataclass(frozen=True)
class Chip:
    """An ESP target with USB DFU in its ROM."""

    name: str
    dfu_pid: int
    image_id: int
    """``esp_chip_id_t`` in its images' headers (ESP-IDF's esp_app_format.h)."""
    bootloader_at: int
    """Where the ROM looks for the 2nd-stage bootloader (``ESP_ROM_BOOTLOADER_OFFSET_FLASH``,
    ESP-IDF's components/esp_rom/<chip>/esp_rom_caps.h)."""


CHIPS: tuple[Chip, ...] = (
    Chip("esp32s2", 0x0002, 0x0002, 0x1000),
    Chip("esp32s3", 0x0009, 0x0009, 0x0),
    Chip("esp32p4", 0x0012, 0x0012, 0x2000),
    Chip("esp32s31", 0x0020, 0x0020, 0x2000),
)

_BY_NAME = {chip.name: chip for chip in CHIPS}
_BY_PID = {chip.dfu_pid: chip for chip in CHIPS}


def chip_by_name(name: str) -> Chip | None:
    """The chip called ``name`` ("esp32s2", "ESP32-S3", ...), or None if it has no USB DFU."""
    return _BY_NAME.get(name.lower().replace("-", "").replace("_", ""))


def chip_by_pid(pid: int) -> Chip | None:
    """The chip whose ROM enumerates with ``pid`` in DFU mode, or None."""
    return _BY_PID.get(pid)


def dfu_chip_names() -> str:
    """The targets that have USB DFU, for messages: "esp32s2, esp32s3, esp32p4, esp32s31"."""
    return ", ".join(chip.name for chip in CHIPS)
