"""``espdfu flash`` with no hands: a board whose console the configuration links to its USB-UART
bridge ([consoles], its resets on) is reset through the bridge into ROM download mode when it is
named (--path) and not on the bus, and into its app after a good flash (--verify does that
itself, to read the boot from its first line)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from ..bench.bridged import into_download_mode, reset_words
from ..bench.settings import WorkbenchSettings, bridged, console_at, workbench_settings
from ..consoles import bridge
from ..consoles.ports import open_port
from ..errors import EspdfuError
from ..flashing.failures import FlashError
from ..flashing.flasher import FlashResult
from ..usb.boards import board_at
from ..usb.transport import Usb
from .common import configured, note


def flash_settings() -> WorkbenchSettings:
    """What says where each board's console is and whether it is reset through a bridge: read
    before the flashes, so that a mistake in the configuration stops before any USB traffic."""
    return workbench_settings(configured())


def _bridges(
    settings: WorkbenchSettings, paths: list[str], usb_world: Usb
) -> Iterator[tuple[str, str | None]]:
    """Each of ``paths`` reset through a bridge, with where its bridge is now (None: not there)."""
    for path in paths:
        label = settings.labels.get(path, "")
        if bridged(settings, path, label):
            yield path, console_at(settings, path, label, usb_world)()


def into_download_modes(
    settings: WorkbenchSettings,
    paths: list[str],
    usb_world: Usb,
    wait_s: float,
    cancel: threading.Event,
) -> None:
    """Reset each board of ``paths`` that is off the bus and has a bridge into download mode,
    and wait for it there; each said on stderr (a failure with what to do: the board is then
    missing, as the flash says)."""
    off_the_bus = [path for path in paths if board_at(usb_world, path) is None]
    for path, device in _bridges(settings, off_the_bus, usb_world):
        reached = into_download_mode(usb_world, path, device, wait_s, cancel)
        if isinstance(reached, FlashError):
            note(f"{reached.message} {reached.hint}".strip())
        else:
            note(reset_words(path, str(device)))


def into_apps(settings: WorkbenchSettings, results: list[FlashResult], usb_world: Usb) -> set[str]:
    """Reset each board flashed well that has a bridge into its app; the paths so reset."""
    flashed = [result.path for result in results if result.ok]
    done = set()
    for path, device in _bridges(settings, flashed, usb_world):
        try:
            if device is None:
                raise EspdfuError("its UART bridge is not there.")
            with open_port(device) as port:
                bridge.into_app(port)
        except EspdfuError as error:
            note(f"{path}: not reset into its app: {error.message} {error.hint}".strip())
            continue
        note(f"{path}: reset into its app through its UART bridge.")
        done.add(path)
    return done
