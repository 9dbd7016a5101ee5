"""``espdfu flash --verify``: after the flashes, each board's next boot read on its console and
checked against the build flashed, for scripts that must know what runs."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping

from ..bench.settings import WorkbenchSettings, bridged, console_at
from ..bench.verify import Verdict, read_boot
from ..errors import EspdfuError
from ..files.dfufile import DfuImage
from ..flashing.flasher import FlashResult
from ..usb.transport import Usb
from .common import note, seconds

VERIFY_S = 15.0
"""How long a board may take by default to reset, boot and name its build."""
_LOOK_S = 0.1

HELP = (
    "after each good flash, reset the board into its app (through its USB-UART bridge when "
    "[consoles] links one; else press RESET when asked) and check that its start-up names the "
    f"build flashed, within SECONDS (default {VERIFY_S:g}); exit 3 when a board was flashed but "
    "not verified (another build runs, it did not boot, or nothing said which)"
)


def add_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verify", nargs="?", const=VERIFY_S, type=seconds, metavar="SECONDS", help=HELP
    )


def verify(
    settings: WorkbenchSettings,
    limit_s: float,
    usb_world: Usb,
    image: DfuImage,
    results: list[FlashResult],
) -> dict[str, tuple[bool, str]]:
    """Each flashed board's verdict, by port: whether it runs the build flashed, and in words
    (``verified: running espdfu-demo build 3``, ``NOT verified: did not boot: …``)."""
    app = image.contents.app
    flashed = [result.path for result in results if result.ok]
    if app is None:  # said for each board, not guessed
        return dict.fromkeys(flashed, (False, "NOT verified: the file's app names no build"))
    labels: Mapping[str, str] = settings.labels
    verdicts: dict[str, tuple[bool, str]] = {}
    for path in flashed:
        label = labels.get(path, "")
        reset = bridged(settings, path, label)
        find = console_at(settings, path, label, usb_world)
        if not reset:
            note(f"{path}: press RESET on the board now, to run its new app.")
        device = _wait_for(find, limit_s)
        if device is None:
            why = f"no console came for it within {limit_s:g} s"
            verdicts[path] = (False, f"NOT verified: {why}")
            continue
        try:
            said = read_boot(device, app, reset=reset, timeout_s=limit_s)
        except EspdfuError as error:
            verdicts[path] = (False, f"NOT verified: {error.message} {error.hint}".strip())
            continue
        if said.verdict is Verdict.VERIFIED:
            verdicts[path] = (True, f"verified: {said.words.removesuffix(' · verified')}")
        else:
            verdicts[path] = (False, f"NOT verified: {said.words}")
    return verdicts


def _wait_for(find: Callable[[], str | None], limit_s: float) -> str | None:
    """The console's device once there, ``limit_s`` at most (an app's own USB console comes
    back with the app after its RESET)."""
    deadline = time.monotonic() + limit_s
    while True:
        device = find()
        if device is not None or time.monotonic() >= deadline:
            return device
        time.sleep(_LOOK_S)
