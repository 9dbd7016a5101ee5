"""Why a chip reset, from the ROM's ``rst:0x<code> (<NAME>)`` line, per chip.

The ROM prints the reset reason's code and its own short name for it; the names are in the mask
ROM, not in ESP-IDF, so the tables below give the codes and enums of ESP-IDF's headers and the
names as printed where a log or ESP-IDF's docs show them ("assumption" where none was found: the
same spelling as its neighbours). Read in espressif/esp-idf at commit 102122904ade (2026-07-23):

- ESP32-S2: components/esp_rom/esp32s2/include/esp32s2/rom/rtc.h (RESET_REASON),
  components/soc/esp32s2/include/soc/reset_reasons.h (soc_reset_reason_t)
- ESP32-S3: components/esp_rom/esp32s3/include/esp32s3/rom/rtc.h,
  components/soc/esp32s3/include/soc/reset_reasons.h
- ESP32: components/esp_rom/esp32/include/esp32/rom/rtc.h (the ROM prints the enum's names)

tests/core/consoles/logs/README.md lists where each printed name was seen.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Chip(enum.Enum):
    ESP32 = "ESP32"
    ESP32S2 = "ESP32-S2"
    ESP32S3 = "ESP32-S3"


class ResetKind(enum.Enum):
    """What a reset reason means to a person."""

    POWER_ON = "power-on"
    SOFTWARE = "software reset"
    """The whole chip reset by software (the 2nd-stage bootloader after a refusal, esp_restart on
    some chips)."""
    CPU = "CPU reset after a panic or restart"
    WATCHDOG = "watchdog"
    BROWNOUT = "brownout"
    DEEP_SLEEP = "deep-sleep wake"
    USB = "reset over USB"
    OTHER = "other"


_ON, _SW, _CPU, _WDT, _BOD, _SLEEP, _USB, _OTHER = ResetKind

# code: (name printed by the ROM, kind). S2 and S3 share codes 0x1-0x14; the S3 adds 0x15-0x17.
_S2: dict[int, tuple[str, ResetKind]] = {
    0x01: ("POWERON", _ON),  # POWERON_RESET; seen in logs
    0x03: ("RTC_SW_SYS_RST", _SW),  # RTC_SW_SYS_RESET; seen on S3 (assumption for S2)
    0x05: ("DSLEEP", _SLEEP),  # DEEPSLEEP_RESET; test_apps/system rtc_8md256 expects DSLEEP
    0x07: ("TG0WDT_SYS_RST", _WDT),  # TG0WDT_SYS_RESET; seen in logs
    0x08: ("TG1WDT_SYS_RST", _WDT),  # TG1WDT_SYS_RESET; seen on S3 (assumption for S2)
    0x09: ("RTCWDT_SYS_RST", _WDT),  # RTCWDT_SYS_RESET; assumption
    0x0A: ("INTRUSION_RST", _OTHER),  # INTRUSION_RESET; assumption
    0x0B: ("TG0WDT_CPU_RST", _WDT),  # TG0WDT_CPU_RESET; assumption
    0x0C: ("RTC_SW_CPU_RST", _CPU),  # RTC_SW_CPU_RESET; seen after every panic in the logs
    0x0D: ("RTCWDT_CPU_RST", _WDT),  # RTCWDT_CPU_RESET; assumption
    0x0F: ("BROWN_OUT_RST", _BOD),  # RTCWDT_BROWN_OUT_RESET; S2 spelling, seen (esp-idf#8265)
    0x10: ("RTCWDT_RTC_RST", _WDT),  # RTCWDT_RTC_RESET; docs/en/api-guides/fatal-errors.rst
    0x11: ("TG1WDT_CPU_RST", _WDT),  # TG1WDT_CPU_RESET; assumption
    0x12: ("SUPER_WDT_RST", _WDT),  # SUPER_WDT_RESET; assumption
    0x13: ("GLITCH_RTC_RST", _OTHER),  # GLITCH_RTC_RESET (clock glitch); assumption
    0x14: ("EFUSE_RST", _OTHER),  # EFUSE_RESET (eFuse CRC error); assumption
}
_S3 = _S2 | {
    0x0F: ("BROWNOUT_RST", _BOD),  # S3 spelling, seen (esp32.com t=125032)
    0x15: ("USB_UART_CHIP_RESET", _USB),  # seen (T-Display-S3#187, esp-idf#12051)
    0x16: ("USB_JTAG_CHIP_RESET", _USB),  # assumption
    0x17: ("POWER_GLITCH_RESET", _BOD),  # assumption: a supply glitch is power trouble
}
_ESP32: dict[int, tuple[str, ResetKind]] = {
    0x01: ("POWERON_RESET", _ON),  # seen
    0x03: ("SW_RESET", _SW),  # seen (the bootloader's reset after a refusal)
    0x04: ("OWDT_RESET", _WDT),  # legacy watchdog; assumption
    0x05: ("DEEPSLEEP_RESET", _SLEEP),  # seen in posts
    0x06: ("SDIO_RESET", _OTHER),  # assumption
    0x07: ("TG0WDT_SYS_RESET", _WDT),  # esp-idf#7
    0x08: ("TG1WDT_SYS_RESET", _WDT),  # assumption
    0x09: ("RTCWDT_SYS_RESET", _WDT),  # assumption
    0x0A: ("INTRUSION_RESET", _OTHER),  # assumption
    0x0B: ("TGWDT_CPU_RESET", _WDT),  # assumption
    0x0C: ("SW_CPU_RESET", _CPU),  # seen after every panic in the logs
    0x0D: ("RTCWDT_CPU_RESET", _WDT),  # assumption
    0x0E: ("EXT_CPU_RESET", _OTHER),  # the other CPU reset it; assumption
    0x0F: ("RTCWDT_BROWN_OUT_RESET", _BOD),  # assumption (same enum name as the source)
    0x10: ("RTCWDT_RTC_RESET", _WDT),  # fatal-errors.rst (esp32)
}
TABLES = {Chip.ESP32: _ESP32, Chip.ESP32S2: _S2, Chip.ESP32S3: _S3}

_BY_NAME = {name: kind for table in TABLES.values() for name, kind in table.values()}
_BY_NAME["BROWNOUT_RST"] = _BOD

RST = re.compile(r"rst:0x([0-9a-fA-F]{1,2})(?: \(([A-Za-z0-9_]*)\)?)?")
"""``rst:0xc (RTC_SW_CPU_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)``, anywhere in a line (after
garbage), its name possibly cut by the line's end."""
BOOT_MODE = re.compile(r"boot:0x[0-9a-fA-F]+ \(([A-Z_(/0-9]*)")
"""The strapping and the mode the ROM chose: ``boot:0x0 (DOWNLOAD(USB/UART0/1/SPI))``."""


@dataclass(frozen=True)
class Reset:
    """One reset of the chip, as its console told it."""

    at: float
    code: int | None = None
    """None when the ROM's banner came without its ``rst:`` line (cut by the next reset)."""
    name: str = ""
    """As printed (``RTC_SW_CPU_RST``), possibly cut."""
    kind: ResetKind | None = None
    download: bool = False
    """The ROM chose download mode (``boot:0x.. (DOWNLOAD…)``)."""

    @property
    def reason(self) -> str:
        """``rst:0xc (RTC_SW_CPU_RST)`` as the ROM printed it; empty when it did not."""
        if self.code is None:
            return ""
        return f"rst:0x{self.code:x} ({self.name})" if self.name else f"rst:0x{self.code:x}"


def kind(code: int, name: str, chip: Chip | None) -> ResetKind:
    """The kind of reset: from the printed name when it is whole, else from the chip's table
    (S2/S3 when the chip is not known: names ending in ``_RESET`` are the ESP32's)."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if chip is None:
        chip = Chip.ESP32 if name.endswith("_RESET") else Chip.ESP32S3
    entry = TABLES[chip].get(code)
    return entry[1] if entry else ResetKind.OTHER


def chip_of_banner(text: str) -> Chip | None:
    """The chip whose ROM printed this banner line (``ESP-ROM:esp32s3-20210327``, ``ets …``)."""
    if "esp32s2" in text:
        return Chip.ESP32S2
    if "esp32s3" in text:
        return Chip.ESP32S3
    if "ets " in text:
        return Chip.ESP32
    return None
