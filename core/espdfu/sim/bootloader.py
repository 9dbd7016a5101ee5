"""Which app a board's 2nd-stage bootloader boots from its flash: what the virtual boards and
the real-USB tier's emulated boards run after a RESET, read from the flash as a real board
reads it (so that a flash of only the changed sectors boots what a whole flash would)."""

from __future__ import annotations

from ..files.partitions import MAX_LENGTH, read_table

PARTITION_TABLE = 0x8000
"""Where the 2nd-stage bootloader reads the partition table (CONFIG_PARTITION_TABLE_OFFSET's
default)."""
_FACTORY = 0x00
DEFAULT_APP = 0x10000
"""Where ESP-IDF's default partition table (partitions_singleapp.csv) puts the factory app."""


def booted_app(flash: bytes | bytearray) -> bytes | None:
    """The app partition the 2nd-stage bootloader boots from ``flash``: with no valid otadata
    (none of the tests writes one), the factory app, else the first OTA app (bootloader_utility.c,
    bootloader_utility_get_selected_boot_partition); None without a partition table."""
    table = read_table(bytes(flash[PARTITION_TABLE : PARTITION_TABLE + MAX_LENGTH]))
    if table is None or not table.apps:
        return None
    apps = sorted(table.apps, key=lambda app: app.subtype != _FACTORY)
    return bytes(flash[apps[0].offset : apps[0].offset + apps[0].size])
