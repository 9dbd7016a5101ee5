"""A board reset into ROM download mode through its USB-UART bridge, and waited for on the bus:
the start of a flash with no hands, for the workbench and for ``espdfu flash``."""

from __future__ import annotations

import threading
import time

from ..consoles import bridge
from ..consoles.ports import open_port
from ..errors import EspdfuError
from ..flashing.failures import Failure, FlashError
from ..usb.boards import Board, Mode, board_at
from ..usb.transport import Usb

_LOOK_S = 0.05
"""How often the bus is looked at for a board its bridge reset into download mode."""
_PLUG_THE_BRIDGE = (
    "Check the DevKit's UART connector and its link in [consoles], or hold BOOT, tap RESET, "
    "release BOOT, and flash again."
)


def into_download_mode(
    usb_world: Usb, path: str, device: str | None, wait_s: float, cancel: threading.Event
) -> Board | FlashError:
    """Reset the board at ``path`` into ROM download mode through its bridge at ``device``
    (None: not there), and wait for it on the bus, ``wait_s`` at most (as long as for DFU mode
    after DETACH): the board once there, or why not."""
    if device is None:
        return _not_reset(path, "its UART bridge is not there")
    try:
        with open_port(device) as port:
            bridge.into_download_mode(port)
    except EspdfuError as error:  # the port is held, refused, or will not set its lines
        return _not_reset(path, error.message.rstrip("."), error.hint)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        board = board_at(usb_world, path)
        if board is not None and board.mode in (Mode.ROM, Mode.DFU) and board.accessible:
            return board
        if cancel.wait(_LOOK_S):
            return FlashError(Failure.CANCELLED, f"The flash of {path} was cancelled.")
    return _not_reset(path, f"it did not come on the bus in download mode within {wait_s:g} s")


def reset_words(path: str, device: str) -> str:
    """What the log says of a board reset into download mode through its bridge."""
    return f"{path}: reset into download mode through its UART bridge ({device})."


def _not_reset(path: str, why: str, hint: str = _PLUG_THE_BRIDGE) -> FlashError:
    return FlashError(
        Failure.NOT_RESET, f"The board at {path} was not reset into download mode: {why}.", hint
    )
