"""The ESP32-S2/S3 ROM's USB DFU, fact by fact: each with its source, or marked as our assumption.

Espressif publishes neither the ROM's source nor its descriptor values, so what is known comes
from users' dfu-util logs, ESP-IDF's issue tracker and its sources (``reference/esp-rom-dfu.md``
collects them). Both models of the ROM — the virtual boards (:mod:`espdfu.sim`) and the QEMU
gadget of the real-USB tests — are built from this one table, and the flasher sizes its waits
for the ROM's erase from it, so a fact changes here or nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from ..chips import Chip
from ..files.dfufile import FLAG_NOERASE, FlashEntry
from .protocol import FunctionalDescriptor

# --- what the ROM shows on the bus ------------------------------------------------------------

TRANSFER_SIZE = 64
"""wTransferSize, in both modes. Observed: dfu-util prints "Device returned transfer size 64"."""

DFU_VERSION = 0x0110
"""bcdDFUVersion, in both modes. Observed: "DFU mode device DFU version 0110"."""

BCD_DEVICE = 0x0723
"""bcdDevice. Observed: dfu-util's listing shows "ver=0723" for a board in download mode."""

CAN_DOWNLOAD, CAN_UPLOAD, MANIFESTATION_TOLERANT, WILL_DETACH = 0x01, 0x02, 0x04, 0x08

RUNTIME_ATTRIBUTES = CAN_DOWNLOAD | WILL_DETACH
"""The runtime interface (interface 2 in ROM download mode). WillDetach is observed: dfu-util
prints "Device will detach and reattach..." only when the bit is set, and it does for these
boards. CanDnload is our assumption (a runtime interface's bit has no effect on hosts)."""

DFU_MODE_ATTRIBUTES = CAN_DOWNLOAD | MANIFESTATION_TOLERANT
"""The DFU-mode interface. Assumption: no log shows these bits. CanDnload because it takes
downloads; ManifestationTolerant because it answers dfuIDLE after the download (below)."""

DETACH_TIMEOUT_MS = 1000
"""wDetachTimeOut. Assumption: not published; with WillDetach set a host does not use it."""


# --- what a download does ---------------------------------------------------------------------

MANIFEST_TO_IDLE = True
"""After the zero-length DNLOAD the next GETSTATUS answers dfuIDLE at once: no dfuMANIFEST, no
poll timeout, no reset. Observed: users' dfu-util logs show "state(2) = dfuIDLE" right after
the download; the ROM's DFU class derives from Zephyr's, which goes from dfuMANIFEST-SYNC
straight to dfuIDLE."""

ERASE_BLOCKS_BUS = True
"""When an archive entry's first data arrives, the ROM erases the entry's whole region in one
go and answers no USB request until it is done (the host's request is NAKed): there is no
dfuDNBUSY with a long bwPollTimeout. Source: esp-idf issue 6999 (dfu-util fails with
"Error during download get_status (LIBUSB_ERROR_TIMEOUT)" at 0 % on a large app; a dfu-util
rebuilt with a 20 s request timeout flashed it) and the ESP-IDF commit that closed it by
splitting files into 512 KiB parts (``ESP_DFU_PART_SIZE``). Which request waits — the DNLOAD
that carries the first data or the GETSTATUS after it — is not published: dfu-util's
failure is in GETSTATUS, so the models hold that one; the flasher allows for both."""

FLASH_SIZE_WITHOUT_PARAMS = 4 * 1024 * 1024
"""The flash size the ROM works with when the archive has no flash_params.dat (ESP-IDF up to
v4.3.3, v4.4.0 and v4.4.1 wrote none): writes beyond it are errADDRESS. Assumption: the ROM's
own default is not published; 4 MB is the flash of the common ESP32-S2/S3 modules."""

BLOCK_POLL_MS = 0
"""bwPollTimeout reported with dfuDNLOAD-IDLE after an ordinary block. Assumption: not
published; the real-USB benchmarks also run the ROM model with 2 ms."""

SECTOR_SIZE = 4096

ERASE_MS_PER_SECTOR = 30.0
"""How long the ROM takes per 4 KiB sector it erases. Assumption, bounded by esp-idf issue
6999: a 1 MiB part did not finish within dfu-util's 5 s (so more than 19.5 ms a sector), and
ESP-IDF chose 512 KiB parts because they do (so less than 39 ms a sector)."""

# --- what a host should allow for -----------------------------------------------------------

ERASE_DEADLINE_MS_PER_SECTOR = 90.0
"""A host's allowance per sector: twice the typical 4 KiB sector-erase time of common SPI NOR
flash (Winbond W25Q32JV datasheet: tSE 45 ms typical, 400 ms maximum for one sector)."""

ERASE_DEADLINE_MARGIN_S = 5.0
"""Added to every erase allowance: the ordinary request timeout, which small entries keep."""

PART_SIZE_HINT = 512 * 1024
"""The part size `idf.py dfu` uses since esp-idf issue 6999: entries no larger are erased
within dfu-util's 5 s request timeout."""


def sectors(address: int, size: int) -> int:
    """The 4 KiB sectors the ROM erases for ``size`` bytes at ``address``."""
    if size <= 0:
        return 0
    first = address // SECTOR_SIZE
    last = (address + size - 1) // SECTOR_SIZE
    return last - first + 1


def erase_seconds(address: int, size: int) -> float:
    """About how long the ROM's erase for an entry takes (the model's rate)."""
    return sectors(address, size) * ERASE_MS_PER_SECTOR / 1000


def erase_deadline_s(address: int, size: int) -> float:
    """How long a host waits for that erase before it calls the ROM hung."""
    return sectors(address, size) * ERASE_DEADLINE_MS_PER_SECTOR / 1000 + ERASE_DEADLINE_MARGIN_S


class Erase(NamedTuple):
    """One entry's erase, as a download meets it."""

    name: str
    address: int
    size: int
    expected_s: float
    deadline_s: float


def erases(entries: Iterable[FlashEntry], transfer_size: int) -> dict[int, Erase]:
    """The blocks of a download during which the ROM may erase, by block number.

    The ROM erases when an entry's first data byte arrives (``FlashEntry.start``); whether it
    acts on the block that ends the entry's name (a few bytes earlier) is not known, so both
    blocks are listed when they differ. Entries flagged not to be erased, and empty ones, are
    not.
    """
    found: dict[int, Erase] = {}
    for entry in entries:
        if not entry.size or entry.flags & FLAG_NOERASE:
            continue
        erase = Erase(
            entry.name,
            entry.address,
            entry.size,
            erase_seconds(entry.address, entry.size),
            erase_deadline_s(entry.address, entry.size),
        )
        for block in range(
            max(entry.start - 4, 0) // transfer_size, entry.start // transfer_size + 1
        ):
            found[block] = erase
    return found


def slow_entries(entries: Iterable[FlashEntry]) -> list[FlashEntry]:
    """Entries larger than ESP-IDF's 512 KiB parts: their erase may outlast a 5 s timeout."""
    return [e for e in entries if e.size > PART_SIZE_HINT and not e.flags & FLAG_NOERASE]


def erase_note(entry: FlashEntry) -> str:
    """What to tell a user about a large entry, in two sentences and a hint."""
    seconds = math.ceil(erase_seconds(entry.address, entry.size))
    return (
        f"'{entry.name}' is one part of {entry.size:,} bytes: the ROM erases it in one go, "
        f"about {seconds} s without answering USB. dfu-util and `idf.py dfu-flash` wait 5 s "
        "for any answer, so they may fail on it (LIBUSB_ERROR_TIMEOUT at 0 %); espdfu waits "
        "for it. To flash it with them too, rebuild with parts: "
        "`idf.py dfu --part-size 524288`."
    )


def dfu_mode_pid(chip: Chip) -> int:
    """The DFU-mode device's PID: the download mode's (0x0002 on ESP32-S2). Assumption: nothing
    public shows it, so the flasher never relies on it (the chip is read at the port before
    DETACH); the models use this unless a test asks for another."""
    return chip.dfu_pid


def runtime_descriptor() -> FunctionalDescriptor:
    return FunctionalDescriptor(RUNTIME_ATTRIBUTES, DETACH_TIMEOUT_MS, TRANSFER_SIZE, DFU_VERSION)


def dfu_mode_descriptor() -> FunctionalDescriptor:
    return FunctionalDescriptor(DFU_MODE_ATTRIBUTES, DETACH_TIMEOUT_MS, TRANSFER_SIZE, DFU_VERSION)
