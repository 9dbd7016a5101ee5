"""How long a virtual board makes its host wait, and the sleeping that imposes it.

One model serves the demo (realistic: a 1 MiB dfu.bin takes about 35 s, as on an ESP32-S2),
the tests (instant: nothing sleeps, every poll timeout is 0) and the benchmarks (scaled).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import Protocol

from ..usb import rom

SECTOR_SIZE = rom.SECTOR_SIZE


@dataclass(frozen=True)
class TimeModel:
    """The device's timings; ``scale`` multiplies every one of them (0 = instant).

    The defaults are the realistic ESP32-S2 ROM: a control transfer takes 1 ms, so a 64-byte
    block (DNLOAD + GETSTATUS) costs 2 ms; erasing costs :data:`espdfu.usb.rom.ERASE_MS_PER_SECTOR`
    per 4 KiB sector (the ROM holds the bus that long, or reports it as dfuDNBUSY's poll
    timeout on a board set so). ``manifest_ms`` is the dfuMANIFEST poll timeout of a board set
    to report one (the ROM does not).
    """

    scale: float = 1.0
    request_s: float = 0.001
    block_write_ms: float = float(rom.BLOCK_POLL_MS)
    erase_ms_per_sector: float = rom.ERASE_MS_PER_SECTOR
    manifest_ms: float = 10.0
    busy_poll_ms: float = 25.0
    """The poll timeout a board stuck busy (the "busy" fault) reports."""
    reenumerate_s: float = 0.5

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"TimeModel.{field.name} cannot be negative")

    @classmethod
    def realistic(cls) -> TimeModel:
        return cls()

    @classmethod
    def instant(cls) -> TimeModel:
        """No sleeps, all poll timeouts 0, re-enumeration at once: for tests."""
        return cls(scale=0.0)

    @classmethod
    def scaled(cls, factor: float) -> TimeModel:
        """The realistic model running ``factor`` times as slow (0.01: a hundred times faster)."""
        return replace(cls(), scale=factor)

    @property
    def latency_s(self) -> float:
        """How long every control transfer takes."""
        return self.request_s * self.scale

    @property
    def reenumerate_delay_s(self) -> float:
        """From a DETACH or reset to the device being on the bus again."""
        return self.reenumerate_s * self.scale

    def poll_ms(self, ms: float) -> int:
        """The bwPollTimeout reported for ``ms`` of device work: never 0 for real work."""
        scaled = ms * self.scale
        return max(1, round(scaled)) if scaled > 0 else 0

    def erase_ms(self, start: int, end: int) -> float:
        """Time to erase the region [start, end), sector by sector (unscaled)."""
        return rom.sectors(start, end - start) * self.erase_ms_per_sector

    def seconds(self, ms: float) -> float:
        """``ms`` of device work in scaled seconds."""
        return ms * self.scale / 1000


class Clock(Protocol):
    """The time boards live in: now, and sleeping until later."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    """The machine's monotonic clock: what every bus runs on unless a test gives it a model."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


WALL_CLOCK = WallClock()


class Pacer:
    """Sleeps out one device's request latencies so that on average they are exact.

    ``time.sleep`` wakes late (about 70 µs on Linux, 7 % of a 1 ms latency). Each latency is
    shortened by the lateness of the previous one, so the lateness is not billed to the host
    in the efficiency benchmark. Sharing one pacer between threads is harmless: the worst a
    race does is to misplace one payback.
    """

    __slots__ = ("_clock", "_late")

    def __init__(self, clock: Clock = WALL_CLOCK) -> None:
        self._clock = clock
        self._late = 0.0

    def deadline(self, arrival: float, latency: float) -> float:
        """When the reply to a request that arrived at ``arrival`` is due (on the clock)."""
        return arrival + latency - min(self._late, latency)

    def wait(self, deadline: float) -> None:
        delay = deadline - self._clock.now()
        if delay > 0:
            self._clock.sleep(delay)
        self._late = max(0.0, self._clock.now() - deadline)
