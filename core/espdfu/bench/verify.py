"""Whether a board runs the build flashed to it: what its app's start-up says of itself (the
ELF's SHA-256, ESP-IDF's ``ELF file SHA256:`` line) against the app the flashed file carried
(its ``esp_app_desc_t``). Never a guess: a board that does not say is "not verified"."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..consoles.health import RunState
from ..files.espimage import AppDesc
from .feed import ConsoleView


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
