"""Every way a flash fails, and the words for it: what happened, where, and what to do now.

:func:`worded` turns what went wrong under a flash (a cancel, a USB error, a status the board
reported, a broken protocol) into the :class:`FlashError` the user reads.
:mod:`espdfu.flashing.flasher` re-exports :class:`Failure` and :class:`FlashError`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

from ..errors import EspdfuError
from ..units import format_size
from ..usb import rom
from ..usb.boards import DRIVER_HINT, access_hint
from ..usb.protocol import (
    BusyTooLongError,
    DeviceGone,
    DeviceStatusError,
    ProtocolError,
    Request,
    Status,
)
from ..usb.transport import InUse, NoDriver, NoPermission, Stalled, TimedOut, UsbFault


class Failure(enum.Enum):
    """Every way a flash fails, with a short title for panels and tables."""

    NOT_FOUND = "board not found"
    NOT_RESET = "not reset into download mode"
    NO_PERMISSION = "no permission"
    NO_DRIVER = "no driver"
    IN_USE = "in use"
    NOT_DFU = "no DFU interface"
    WRONG_CHIP = "wrong chip"
    WONT_BOOT = "would not boot"
    LOST = "lost after detach"
    VANISHED = "device vanished"
    DEVICE_STATUS = "device error"
    STALL = "request refused"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol error"
    USB = "USB error"
    CANCELLED = "cancelled"


_FINAL = {
    Failure.NO_PERMISSION,
    Failure.NO_DRIVER,
    Failure.NOT_DFU,
    Failure.WRONG_CHIP,
    Failure.WONT_BOOT,
    Failure.CANCELLED,
}
"""Failures a retry cannot mend."""


class FlashError(EspdfuError):
    """A flash that did not complete, and why."""

    def __init__(
        self,
        kind: Failure,
        message: str,
        hint: str = "",
        *,
        accepted: int = 0,
        status: Status | None = None,
        final: bool = False,
    ) -> None:
        super().__init__(message, hint)
        self.kind = kind
        self.accepted = accepted
        """Payload bytes the device had confirmed when it failed."""
        self.status = status
        self.final = final or kind in _FINAL
        """A retry cannot mend it."""
        self.left_busy = False
        """A cancel found the board busy, and it was left so (it needs a RESET): a cancel
        otherwise leaves it ready to flash again."""


class Cancelled(Exception):
    """The flash was cancelled (raised inside a job, worded by :func:`worded`)."""


WORDED = (Cancelled, DeviceGone, UsbFault, DeviceStatusError, ProtocolError, BusyTooLongError)
"""What :func:`worded` puts in words: everything that can go wrong talking to a board."""

_VANISH_GRACE_S = 0.5
_RETRY_HINT = (
    "Flash again (espdfu put the board back in dfuIDLE if it could); if it fails the same way, "
    "replug the board."
)
_STATUS_HINTS = {
    Status.VERIFY: "Check the file with `espdfu info`, then flash again: the data or the "
    "file is damaged.",
    Status.ADDRESS: "Build for the board's flash size (menuconfig → Serial flasher config): "
    "the file writes beyond this board's flash.",
    Status.FILE: "Flash a dfu.bin made by `idf.py dfu`: the board rejected the archive.",
    Status.TARGET: "Flash the dfu.bin built for this board: the file is for another chip.",
}


def worded(
    error: Exception,
    *,
    path: str,
    at: str,
    accepted: int,
    request: Request,
    erase: rom.Erase | None,
    timeout_ms: int,
    left_the_bus: Callable[[float], bool],
) -> FlashError:
    """The failure ``error`` of the flash of the board at ``path``, in words.

    ``at`` says where in the download it happened ("at byte 1,024 of 4,096"), ``accepted``
    is what the board had confirmed, ``request`` the one in flight, ``erase`` the ROM's erase
    under way, ``timeout_ms`` the usual request timeout. A USB error may mean the board left
    the bus: ``left_the_bus(grace_s)`` looks, for that long at most.
    """
    if isinstance(error, Cancelled):
        return FlashError(
            Failure.CANCELLED,
            f"Cancelled {at}; the board is left ready to flash again.",
            accepted=accepted,
        )
    if isinstance(error, DeviceGone) or (
        isinstance(error, UsbFault)
        and not isinstance(error, (Stalled, NoPermission, NoDriver, InUse))
        # After a timeout the kernel has had all that time to notice a disconnect.
        and left_the_bus(0 if isinstance(error, TimedOut) else _VANISH_GRACE_S)
    ):
        return FlashError(
            Failure.VANISHED,
            f"The board vanished {at}: it was unplugged or reset.",
            "Replug the board and flash again; check the cable and hub.",
            accepted=accepted,
        )
    if isinstance(error, DeviceStatusError):
        return FlashError(
            Failure.DEVICE_STATUS,
            f"The board reported {error.status.label} {at}: {error.status.meaning}.",
            _STATUS_HINTS.get(error.status, "Flash again; if it keeps failing, rebuild."),
            accepted=accepted,
            status=error.status,
        )
    if isinstance(error, Stalled):
        return FlashError(
            Failure.STALL,
            f"The board refused a {request.name} request {at} (STALL).",
            _RETRY_HINT,
            accepted=accepted,
        )
    if isinstance(error, TimedOut) and erase is not None:
        return FlashError(
            Failure.TIMEOUT,
            f"The board did not finish erasing {format_size(erase.size)} at "
            f"0x{erase.address:x} (for '{erase.name}') within {erase.deadline_s:.0f} s "
            f"{at}; the ROM needs about {math.ceil(erase.expected_s)} s for that much "
            "flash.",
            "Press RESET on the board (or replug it) and flash again. If it hangs again, "
            "rebuild with smaller parts: `idf.py dfu --part-size 524288`.",
            accepted=accepted,
            final=True,  # a ROM that stopped answering stays so until it is reset
        )
    if isinstance(error, TimedOut):
        return FlashError(
            Failure.TIMEOUT,
            f"The board did not answer a {request.name} request within "
            f"{timeout_ms / 1000:g} s {at}.",
            _RETRY_HINT,
            accepted=accepted,
        )
    if isinstance(error, BusyTooLongError):
        return FlashError(
            Failure.TIMEOUT,
            f"The board {error} ({at}).",
            "Press RESET on the board (or replug it) and flash again.",
            accepted=accepted,
            final=True,  # a board stuck that long stays stuck until it is reset
        )
    if isinstance(error, NoDriver):
        return FlashError(
            Failure.NO_DRIVER,
            f"The board at {path} cannot be opened: it has no driver.",
            DRIVER_HINT,
        )
    if isinstance(error, NoPermission):
        return FlashError(
            Failure.NO_PERMISSION,
            f"No permission to use the board at {path}.",
            access_hint(),
        )
    if isinstance(error, InUse):
        return FlashError(
            Failure.IN_USE,
            f"Another program is using the board at {path}.",
            "Close dfu-util, another espdfu or an IDE that is flashing it, then try again.",
        )
    if isinstance(error, ProtocolError):
        return FlashError(
            Failure.PROTOCOL,
            f"The board broke the DFU protocol {at}: {error}.",
            _RETRY_HINT,
            accepted=accepted,
        )
    return FlashError(
        Failure.USB,
        f"USB error on a {request.name} request {at}: {error}.",
        "Replug the board and flash again.",
        accepted=accepted,
    )
