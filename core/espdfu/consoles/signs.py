"""What a console line says about the board: the ROM's lines, the bootloader's, a refusal, a
panic, a brownout, the task watchdog, or the app's own output.

Each pattern is matched on a line's text once colour codes are gone (:mod:`.lines`) and once a
host's time prefix is taken off (:func:`plain`). Sources are in espressif/esp-idf at commit
102122904ade unless a version is named; tests/core/consoles/logs/README.md quotes them and shows
each in real logs.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_HOST_PREFIX = re.compile(
    r"^(?:\[\d\d:\d\d:\d\d(?:\.\d+)?\]"  # ESPHome's / web loggers' [06:10:46]
    r"|\d\d:\d\d:\d\d\.\d{3} -> )"  # the Arduino IDE's serial monitor: 18:10:21.632 ->
)

BANNER = re.compile(r"E?SP-ROM:|ets [A-Z][a-z]{2} +\d{1,2} \d{4} \d\d:\d\d:\d\d")
"""The ROM's first line at every reset: ``ESP-ROM:esp32s3-20210327`` (S2/S3; the E is sometimes
eaten by the reset's garbage) or ``ets Jul 29 2019 12:21:46`` (ESP32); anywhere in a line."""

_ROM_LINES = (
    "Build:",
    "Saved PC:",
    "SPIWP:",
    "configsip:",
    "clk_drv:",
    "load:0x",
    "ho 0 tail",
    "entry 0x",
    "Octal Flash Mode Enabled",
    "For OPI Flash",
    "waiting for download",
    "SHA-256 comparison failed",  # S3 ROM, the boot goes on
    "Calculated: ",
    "Expected: ",
    "Attempting to boot anyway",
)
ENTRY = "entry 0x"
"""The ROM hands over to the 2nd-stage bootloader."""
DOWNLOAD = "waiting for download"

ROM_REFUSALS = (
    re.compile(r"invalid header: ?(?:0x[0-9a-fA-F]*)?"),  # the ROM finds no bootloader image
    re.compile(r"flash read err, \d+"),  # ESP32 ROM (esp-idf#11747)
)
"""The ROM's refusals (mask ROM, not in ESP-IDF; seen in the logs)."""

_LOG = re.compile(r"^([EWIDV]) (?:\((?:\d+|[\d:.]+)\) )?([A-Za-z0-9_.\-]+): (.*)$")
"""``E (194) boot: …`` and ESP_DRAM_LOG's ``E BOD: …`` (components/log/include/esp_log_format.h)."""

BOOTLOADER_TAGS = frozenset(
    {
        "boot",
        "esp_image",
        "qio_mode",
        "flash_parts",
        "flash_encrypt",
        "secure_boot",
        "secure_boot_v2",
        "bootloader_flash",
        "bootloader_random",
        "bootloader_sha",
        "efuse",
        "boot_comm",
        "spi_flash_boot",
    }
) | {f"boot.{chip}" for chip in ("esp32", "esp32s2", "esp32s3")}
"""The 2nd-stage bootloader's log tags (components/bootloader_support, components/bootloader)."""

STARTUP_TAGS = frozenset(
    {
        "cpu_start",
        "app_init",
        "heap_init",
        "app_start",
        "esp_psram",
        "spi_flash",
        "sleep",
        "sleep_gpio",
        "octal_psram",
        "quad_psram",
        "esp_core_dump_flash",
        "esp_core_dump_elf",
        "esp_core_dump_common",
        "esp_core_dump_uart",
        "system_api",
        "clk",
        "intr_alloc",
    }
)
"""ESP-IDF's own start-up before the app's code (components/esp_system: startup_funcs.c,
port/cpu_start.c; heap, psram, flash and core-dump init): the app is still starting."""

ELF_SHA256 = re.compile(r"^ELF file SHA256:\s+([0-9a-f]{8,64})")
"""ESP-IDF's start-up naming the running app's build, first digits of its ELF's SHA-256
(components/esp_app_format/esp_app_desc.c: ``ELF file SHA256:  %s...``, tag ``app_init`` in
v5.x, ``cpu_start`` before); matched in the log line's message."""

RUN_MARKS = ("main_task: ", "cpu_start: Starting scheduler on PRO CPU")
"""ESP-IDF's hand-over to the app: v5.x ``main_task: Started on CPU0`` / ``Calling app_main()``
(components/freertos/app_startup.c), v4.4 ``cpu_start: Starting scheduler on PRO CPU.``."""

FINAL_REFUSALS = (
    "No bootable app partitions in the partition table",
    "No bootable test partition in the partition table",
    "Factory app partition is not bootable",
    "Factory test app partition is not bootable",
    "load partition table error!",
    "Failed to verify partition table",
    "chip revision check failed",
    "mismatch chip ID",
)
"""The 2nd-stage bootloader gives up (components/bootloader_support/src/bootloader_utility.c,
bootloader_common_loader.c; components/bootloader/subproject/main/bootloader_start.c).
``OTA app partition slot N is not bootable`` is not here: the next slot is tried."""

_GURU = re.compile(r"Guru Meditation Error: Core +\d+ panic.ed \(([^)]*)\)")
_ABORT = re.compile(r"abort\(\) was called at PC 0x[0-9a-fA-F]+")
_ASSERT = re.compile(r"assert failed: (?:\S+ )?([^\s:]+):(\d+)|assert failed: (0x[0-9a-fA-F]+)")
_OLD_ASSERT = re.compile(r'assertion ".*" failed: file "([^"]+)", line (\d+)')
_OVERFLOW = re.compile(r"\*\*\*ERROR\*\*\* A stack overflow in task (\S+)")
_ROM_FATAL = re.compile(r"Fatal exception \((\d+)\): (\w+)")
_ROM_PANIC = re.compile(r"^Panic at [0-9a-fA-F]{8}\s*$")
_REGISTERS = re.compile(
    r"^(?:Core +\d+ register dump:|(?:PC|PS|A\d{1,2}|SAR|EXCCAUSE|EXCVADDR|LBEG|LEND|LCOUNT)"
    r" *: 0x[0-9a-fA-F]{8})"
)
BACKTRACE = "Backtrace:"
BROWNOUT = "Brownout detector was triggered"
"""v4.4-v5.1 bare (components/esp_system/port/brownout.c), v5.3 ``I BOD: …``, now ``E BOD: …``
(components/esp_hw_support/power_supply/brownout.c)."""
TASK_WDT = "task_wdt"
_TWDT_TASK = re.compile(r"^ ?- (\S+) \(CPU")
_NEUTRAL = re.compile(
    r"^(?:--- |0x[0-9a-fA-F]{8}: |ELF file SHA256:|Rebooting|Panic handler entered|Aborting\.)"
)
"""A host monitor's own lines (``--- idf_monitor on …``, decoded addresses) and a panic's tail."""


def plain(text: str) -> str:
    """The line without a host's time prefix (``[06:10:46]``, ``18:10:21.632 -> ``)."""
    return _HOST_PREFIX.sub("", text, count=1)


def log(text: str) -> tuple[str, str, str] | None:
    """(level letter, tag, message) of an ESP-IDF log line."""
    match = _LOG.match(text)
    return (match[1], match[2], match[3]) if match else None


def rom_line(text: str) -> bool:
    """``mode:DIO, clock div:1`` (seen as ``modeIO, …`` where a forum made ``:D`` a smiley)…"""
    return text.startswith(_ROM_LINES) or ", clock div:" in text


def neutral(text: str) -> bool:
    """Says nothing of the board: blank, garbage (U+FFFD only), a monitor's line, a panic's
    tail."""
    return not text.strip("\ufffd \t") or _NEUTRAL.match(text) is not None


def panic(text: str) -> str | None:
    """What a panic's first line says went wrong, short (``LoadProhibited``, ``assert failed in
    startup.c:298``); None when the line starts no panic."""
    if match := _GURU.search(text):
        return match[1]
    if match := _ASSERT.search(text):
        where = match[3] or f"{PurePosixPath(match[1]).name}:{match[2]}"
        return f"assert failed in {where}" if match[1] else f"assert failed at {where}"
    if match := _OLD_ASSERT.search(text):
        return f"assert failed in {PurePosixPath(match[1]).name}:{match[2]}"
    if _ABORT.search(text):
        return "abort()"
    if match := _OVERFLOW.search(text):
        return f"stack overflow in task {match[1]}"
    if match := _ROM_FATAL.search(text):
        return f"ROM: Fatal exception ({match[1]}): {match[2]}"
    if _ROM_PANIC.match(text):
        return "ROM panic"
    return None


def panic_part(text: str) -> bool:
    """A line of a panic's register dump, its first line gone by unread (a console opened in
    the middle of it). A backtrace alone is not one: apps print theirs (esp_backtrace_print),
    and so does the task watchdog."""
    return _REGISTERS.match(text) is not None


def watchdog_task(text: str) -> str | None:
    """The task a task-watchdog report names (`` - IDLE1 (CPU 1)``)."""
    match = _TWDT_TASK.match(text)
    return match[1] if match else None


def final_refusal(message: str) -> bool:
    return message.startswith(FINAL_REFUSALS)
