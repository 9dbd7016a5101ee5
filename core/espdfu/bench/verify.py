"""Whether a board runs the build flashed to it: what its app's start-up says of itself (the
ELF's SHA-256, ESP-IDF's ``ELF file SHA256:`` line) against the app the flashed file carried
(its ``esp_app_desc_t``). Never a guess: a board that does not say is "not verified"."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..consoles import bridge
from ..consoles.health import Health, RunState
from ..consoles.lines import Splitter
from ..consoles.ports import open_port
from ..files.espimage import AppDesc
from .feed import ConsoleView

STARTING_S = 1.0
"""How long ``espdfu flash --verify`` reads an app on after its start-up named the build: an app
that panics as it starts (in app_main) names its build first (an assumption that a second covers
what such apps do before they crash)."""


class Verdict(enum.Enum):
    VERIFIED = "verified"
    OTHER = "another build"
    NOT_BOOTED = "did not boot"
    UNVERIFIED = "not verified"


@dataclass(frozen=True)
class Check:
    verdict: Verdict
    forms: tuple[str, ...]
    """What a panel says, the fullest first, then shorter for a narrow panel: ``running
    espdfu-demo build 3 · verified``, ``running build 3 · verified``, ``running · verified``."""

    @property
    def words(self) -> str:
        return self.forms[0]


def check(flashed: AppDesc | None, console: ConsoleView | None) -> Check | None:
    """What the board's console says of the build ``flashed`` to it (None: nothing yet, or no
    build of ours to compare: not flashed here, or the console is not open)."""
    if flashed is None or console is None or not console.open:
        return None
    if console.state in (RunState.CANNOT_BOOT, RunState.CRASHING):
        why = console.detail or console.said
        return Check(Verdict.NOT_BOOTED, (f"did not boot: {why}", "did not boot"))
    if console.elf:
        if flashed.elf_sha256.hex().startswith(console.elf):
            forms = (
                f"running {flashed.project} {flashed.version} · verified",
                f"running {flashed.version} · verified",
                "running · verified",
            )
            return Check(Verdict.VERIFIED, forms)
        other = f"runs another build (ELF {console.elf[:8]}…, flashed {flashed.elf_prefix[:8]}…)"
        return Check(Verdict.OTHER, (other, "runs another build"))
    if console.state is RunState.RUNNING:
        unknown = "running · not verified: no start-up banner seen"
        return Check(Verdict.UNVERIFIED, (unknown, "running · not verified"))
    return None


def read_boot(
    device: str,
    flashed: AppDesc,
    *,
    reset: bool,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> Check:
    """The board's next boot, read on its console at ``device`` and checked against the build
    ``flashed`` (for a script: ``espdfu flash --verify``).

    With ``reset``, the board is reset into its app through its bridge once the port is open,
    so that its start-up is read from the first line. Reads until the boot names a build or
    fails, ``timeout_s`` at most: a board that never says is "not verified", never a guess.
    Raises :class:`~espdfu.errors.EspdfuError` when the port or the bridge will not.
    """
    health, splitter = Health(), Splitter()
    view = ConsoleView(device=device)
    verified: tuple[Check, float] | None = None
    """The build named, and until when the app is read on before it is said to run it."""
    with open_port(device) as port:
        if reset:
            bridge.into_app(port)
        deadline = clock() + timeout_s
        while clock() < deadline:
            for line in splitter.feed(port.read(max(1, port.in_waiting)), clock()):
                health.see(line)
            reading = health.reading(clock())
            view = ConsoleView(
                device, reading.state, reading.detail, said=reading.words, elf=reading.elf
            )
            said = check(flashed, view)
            if said is not None and said.verdict is Verdict.VERIFIED:
                verified = verified or (said, clock() + STARTING_S)
                if clock() >= verified[1]:
                    return said
            elif said is not None and said.verdict is not Verdict.UNVERIFIED:
                return said  # another build, or a crash (as the app starts: after its name)
    if verified is not None:
        return verified[0]  # the time ran out as it started
    if view.state is RunState.RUNNING:
        why = "its app runs, but its start-up named no build (no `ELF file SHA256:` line)"
    else:
        why = f"no boot named a build on {device} within {timeout_s:g} s"
    return Check(Verdict.UNVERIFIED, (why, "not verified"))
