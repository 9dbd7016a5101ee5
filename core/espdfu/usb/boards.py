"""What each connected device is: a board in download, DFU or app mode, or why it cannot be one.

Boards are named by their USB port path: every ESP board says serial "0", and the address
changes at each re-enumeration, but the port a board is plugged into does not.
"""

from __future__ import annotations

import enum
import logging
import sys
from dataclasses import dataclass, replace
from typing import Any

import usb.core
import usb.util

from ..chips import ESPRESSIF_VID, Chip, chip_by_pid
from .protocol import (
    DFU_CLASS,
    DFU_SUBCLASS,
    PROTOCOL_DFU,
    DeviceGone,
    FunctionalDescriptor,
    ProtocolError,
    State,
)
from .transport import (
    DfuInterface,
    InUse,
    NoDriver,
    NoPermission,
    Usb,
    UsbFault,
    open_device,
    port_order,
    port_path,
)

log = logging.getLogger(__name__)

USB_SERIAL_JTAG_PID = 0x1001
STATE_TIMEOUT_MS = 1000
DRIVER_HINT = (
    "Install the WinUSB driver (Windows has none for this board): Espressif's signed "
    "esp-win-usb-drivers (https://github.com/espressif/esp-win-usb-drivers/releases) or, "
    "without them, Zadig: WinUSB on Interface 2 (the DFU interface in download mode), and "
    "again on the DFU-mode device that appears after DETACH."
)


class Mode(enum.Enum):
    """What a device is doing, as far as flashing is concerned."""

    ROM = "ROM download"
    DFU = "DFU"
    APP = "app (DFU runtime)"
    JTAG = "USB-Serial-JTAG"
    NO_DFU = "no DFU"

    @property
    def runtime(self) -> bool:
        """The device must be DETACHed into DFU mode before a download."""
        return self in (Mode.ROM, Mode.APP)


class Access(enum.Enum):
    """Whether espdfu can open a device, and if not, what stops it."""

    OK = "ok"
    NO_PERMISSION = "no permission"
    NO_DRIVER = "no driver"
    """Windows has no WinUSB driver for it (libusb cannot open it at all)."""


@dataclass(frozen=True)
class Board:
    """A device espdfu can flash, or explain why it cannot."""

    path: str
    vid: int
    pid: int
    address: int
    chip: Chip | None
    mode: Mode
    interface: int | None
    """The DFU interface number (runtime or DFU mode), None without one."""
    functional: FunctionalDescriptor | None
    access: Access
    hint: str = ""
    """What to do about this board, when something must be done first."""

    @property
    def chip_name(self) -> str:
        return self.chip.name if self.chip else "unknown"

    @property
    def accessible(self) -> bool:
        return self.access is Access.OK

    @property
    def flashable(self) -> bool:
        """It has a DFU interface and can be opened (whether the file fits is another check)."""
        return self.interface is not None and self.accessible

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "vid": self.vid,
            "pid": self.pid,
            "chip": self.chip_name,
            "mode": self.mode.name.lower(),
            "mode_text": self.mode.value,
            "transfer_size": self.functional.transfer_size if self.functional else None,
            "accessible": self.accessible,
            "access": self.access.name.lower(),
            "hint": self.hint,
        }


def scan(usb_world: Usb) -> list[Board]:
    """Every board connected now, in port path order."""
    boards = (classify(device) for device in usb_world.devices())
    return sorted((board for board in boards if board), key=lambda board: port_order(board.path))


def board_at(usb_world: Usb, path: str) -> Board | None:
    """The board at port path ``path`` now, if there is one."""
    device = usb_world.find(path)
    return classify(device) if device is not None else None


def classify(device: usb.core.Device) -> Board | None:
    """The board ``device`` is, or None for devices that are not for espdfu."""
    path = port_path(device)
    if path is None:
        return None
    vid, pid = device.idVendor, device.idProduct
    interface, protocol, functional = _find_dfu_interface(device)
    if vid != ESPRESSIF_VID and interface is None:
        return None
    access = _probe_access(device)
    if access is None:
        return None  # it left the bus while we looked
    espressif_chip = chip_by_pid(pid) if vid == ESPRESSIF_VID else None
    if interface is None:
        mode = Mode.JTAG if pid == USB_SERIAL_JTAG_PID else Mode.NO_DFU
    elif protocol == PROTOCOL_DFU:
        mode = Mode.DFU
    else:
        mode = Mode.ROM if espressif_chip else Mode.APP
    # Each argument is named as the field it fills.
    board = Board(
        path, vid, pid, device.address, espressif_chip, mode, interface, functional, access
    )
    return replace(board, hint=_hint(board))


def _find_dfu_interface(
    device: usb.core.Device,
) -> tuple[int | None, int | None, FunctionalDescriptor | None]:
    """(interface number, protocol, functional descriptor) of the first DFU interface."""
    try:
        configuration = device[0]
        for interface in configuration:
            if (interface.bInterfaceClass, interface.bInterfaceSubClass) == (
                DFU_CLASS,
                DFU_SUBCLASS,
            ):
                extra = bytes(interface.extra_descriptors) + bytes(configuration.extra_descriptors)
                return (
                    interface.bInterfaceNumber,
                    interface.bInterfaceProtocol,
                    FunctionalDescriptor.find(extra),
                )
    except (usb.core.USBError, IndexError, ValueError):
        pass  # descriptors unreadable: treat as no DFU
    return None, None, None


def descriptors(device: usb.core.Device) -> dict[str, Any]:
    """What the device says of itself, as libusb has it (no request is sent): the device
    descriptor's fields and each interface with its class and extra descriptors (hex), for a
    trace or a bug report. Unreadable parts are said so, not raised."""
    fields = ("bcdUSB", "bDeviceClass", "bDeviceSubClass", "bDeviceProtocol", "bMaxPacketSize0")
    found: dict[str, Any] = {
        "path": port_path(device),
        "vid_pid": f"{device.idVendor:04x}:{device.idProduct:04x}",
        "bcdDevice": f"{device.bcdDevice:04x}",
        "address": device.address,
        **{name: getattr(device, name, None) for name in fields},
    }
    try:
        configuration = device[0]
        found["configuration_extra"] = bytes(configuration.extra_descriptors).hex()
        found["interfaces"] = [
            {
                "number": interface.bInterfaceNumber,
                "class": f"{interface.bInterfaceClass:02x}/{interface.bInterfaceSubClass:02x}/"
                f"{interface.bInterfaceProtocol:02x}",
                "extra": bytes(interface.extra_descriptors).hex(),
            }
            for interface in configuration
        ]
    except (usb.core.USBError, IndexError, ValueError) as error:
        found["interfaces"] = f"unreadable: {error}"
    return found


def _probe_access(device: usb.core.Device) -> Access | None:
    """Can this process open the device? None if it is gone. Opening sends nothing to it."""
    try:
        open_device(device)
    except NoPermission:
        return Access.NO_PERMISSION
    except NoDriver:
        return Access.NO_DRIVER
    except DeviceGone:
        return None
    except UsbFault:
        pass  # no reason known to refuse it: a flash will say what fails, in words
    finally:
        usb.util.dispose_resources(device)
    return Access.OK


def _hint(board: Board) -> str:
    if board.access is Access.NO_PERMISSION:
        return access_hint()
    if board.access is Access.NO_DRIVER:
        return DRIVER_HINT
    if board.mode is Mode.JTAG:
        return (
            "Flash it over serial (`idf.py flash`): this is the USB-Serial-JTAG port "
            "(303a:1001), which has no DFU. On an ESP32-S3, ROM DFU needs the USB-OTG "
            "peripheral (an external USB PHY or the permanent USB_PHY_SEL eFuse; chips dated "
            "before 2219 cannot use DFU)."
        )
    if board.mode is Mode.NO_DFU:
        return "Hold BOOT, tap RESET, release BOOT: download mode (this app has no DFU)."
    if board.chip is None and board.vid != ESPRESSIF_VID:
        return "Not an Espressif board: espdfu flashes ESP32-S2/S3 dfu.bin files."
    return ""


def access_hint(platform: str = sys.platform) -> str:
    """How to get permission to open a board, on this operating system."""
    if platform.startswith("linux"):
        return (
            "Install the udev rule and replug: no permission to open the board. "
            'The rule: `sudo "$(command -v espdfu)" udev-rule --install`.'
        )
    if platform.startswith("win"):
        # A missing driver is Access.NO_DRIVER; ACCESS is a WinUSB device another program holds.
        return (
            "Close the program that has the board open, then replug it: Windows refused "
            "access (a WinUSB device takes one program at a time)."
        )
    return "Close other programs using the board, then replug it: the system refused access."


def read_state(usb_world: Usb, board: Board) -> str:
    """The board's DFU state in words, asked of the board itself ("-" when it has none)."""
    if not board.accessible:
        return board.access.value
    if board.interface is None:
        return "-"
    device = usb_world.find(board.path)
    if device is None:
        return "gone"
    dfu = DfuInterface(device, board.interface, timeout_ms=STATE_TIMEOUT_MS)
    try:
        dfu.claim()
        reply = dfu.get_status()
    except InUse:
        return "in use by another program"
    except (UsbFault, DeviceGone, ProtocolError):
        return "no answer"
    finally:
        dfu.close()
    if reply.state is State.ERROR:
        return f"error ({reply.status.label})"
    return "ready" if reply.state in (State.APP_IDLE, State.DFU_IDLE) else reply.state.label
