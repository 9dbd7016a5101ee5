"""What a virtual board shows on the bus: its descriptors in each mode, and libusb's errors.

The descriptor objects carry the fields (and ``extra_descriptors``) that pyusb reads from the
structures of its libusb1 backend, and encode to the bytes a GET_DESCRIPTOR returns.
"""

from __future__ import annotations

import enum
import errno
import struct
from dataclasses import dataclass
from typing import ClassVar, Literal

import usb.core

from ..chips import ESPRESSIF_VID, Chip
from ..usb import rom
from ..usb.protocol import (
    DFU_CLASS,
    DFU_SUBCLASS,
    PROTOCOL_DFU,
    PROTOCOL_RUNTIME,
)

BusMode = Literal["rom", "dfu", "app", "jtag"]
"""What a virtual board shows on the bus: ROM download mode, the ROM's DFU mode, an application
with a DFU runtime, or USB-Serial-JTAG alone (how a host sees it:
:class:`espdfu.usb.boards.Mode`)."""
TRANSFER_SIZE = rom.TRANSFER_SIZE
APP_PID = 0x4002
JTAG_PID = 0x1001


# --- libusb's errors ---------------------------------------------------------------------------


class Libusb(enum.IntEnum):
    """The libusb error codes a virtual device causes."""

    IO = -1
    ACCESS = -3
    NO_DEVICE = -4
    NOT_FOUND = -5
    BUSY = -6
    TIMEOUT = -7
    PIPE = -9
    NOT_SUPPORTED = -12


_LIBUSB_ERRORS = {
    Libusb.IO: ("Input/Output Error", errno.EIO),
    Libusb.ACCESS: ("Access denied (insufficient permissions)", errno.EACCES),
    Libusb.NO_DEVICE: ("No such device (it may have been disconnected)", errno.ENODEV),
    Libusb.NOT_FOUND: ("Entity not found", errno.ENOENT),
    Libusb.BUSY: ("Resource busy", errno.EBUSY),
    Libusb.TIMEOUT: ("Operation timed out", errno.ETIMEDOUT),
    Libusb.PIPE: ("Pipe error", errno.EPIPE),
    Libusb.NOT_SUPPORTED: (
        "Operation not supported or unimplemented on this platform",
        errno.ENOSYS,
    ),
}


def usb_error(code: Libusb) -> Exception:
    """The exception pyusb's libusb1 backend raises for ``code``."""
    text, number = _LIBUSB_ERRORS[code]
    if code is Libusb.NOT_SUPPORTED:
        return NotImplementedError(text)  # not a USBError: pyusb's _check makes it this
    kind = usb.core.USBTimeoutError if code is Libusb.TIMEOUT else usb.core.USBError
    error: Exception = kind(text, int(code), number)
    return error


# --- descriptors, with the fields and extras libusb's structures have ------------------------


class _Packed:
    """A descriptor whose wire form is some of its fields, packed in order."""

    WIRE: ClassVar[tuple[str, str]]
    """The struct format and the names of the fields it packs."""

    def encode(self) -> bytes:
        layout, names = self.WIRE
        return struct.pack(layout, *(getattr(self, name) for name in names.split()))


@dataclass(frozen=True)
class EndpointDescriptor(_Packed):
    bEndpointAddress: int
    bmAttributes: int
    wMaxPacketSize: int
    bInterval: int = 0
    bLength: ClassVar[int] = 7
    bDescriptorType: ClassVar[int] = 5
    bRefresh: ClassVar[int] = 0
    bSynchAddress: ClassVar[int] = 0
    WIRE = (
        "<BBBBHB",
        "bLength bDescriptorType bEndpointAddress bmAttributes wMaxPacketSize bInterval",
    )

    @property
    def extra_descriptors(self) -> list[int]:
        return []


@dataclass(frozen=True)
class InterfaceDescriptor(_Packed):
    """One interface (alternate setting 0); ``kernel_driver``: the host binds a driver to it."""

    bInterfaceNumber: int
    bInterfaceClass: int
    bInterfaceSubClass: int
    bInterfaceProtocol: int
    endpoints: tuple[EndpointDescriptor, ...] = ()
    extra: bytes = b""
    kernel_driver: bool = False
    bLength: ClassVar[int] = 9
    bDescriptorType: ClassVar[int] = 4
    bAlternateSetting: ClassVar[int] = 0
    iInterface: ClassVar[int] = 0
    WIRE = (
        "<9B",
        "bLength bDescriptorType bInterfaceNumber bAlternateSetting bNumEndpoints "
        "bInterfaceClass bInterfaceSubClass bInterfaceProtocol iInterface",
    )

    @property
    def bNumEndpoints(self) -> int:
        return len(self.endpoints)

    @property
    def extra_descriptors(self) -> list[int]:
        """A fresh list each time, as libusb1's backend gives."""
        return list(self.extra)

    def encode(self) -> bytes:
        return super().encode() + self.extra + b"".join(e.encode() for e in self.endpoints)


@dataclass(frozen=True)
class ConfigurationDescriptor(_Packed):
    interfaces: tuple[InterfaceDescriptor, ...]
    extra: bytes = b""
    bLength: ClassVar[int] = 9
    bDescriptorType: ClassVar[int] = 2
    bConfigurationValue: ClassVar[int] = 1
    iConfiguration: ClassVar[int] = 0
    bmAttributes: ClassVar[int] = 0x80
    bMaxPower: ClassVar[int] = 50
    WIRE = (
        "<BBHBBBBB",
        "bLength bDescriptorType wTotalLength bNumInterfaces bConfigurationValue "
        "iConfiguration bmAttributes bMaxPower",
    )

    @property
    def bNumInterfaces(self) -> int:
        return len(self.interfaces)

    @property
    def wTotalLength(self) -> int:
        return self.bLength + len(self._body())

    @property
    def extra_descriptors(self) -> list[int]:
        return list(self.extra)

    def encode(self) -> bytes:
        return super().encode() + self._body()

    def _body(self) -> bytes:
        return self.extra + b"".join(i.encode() for i in self.interfaces)


@dataclass(frozen=True)
class DeviceDescriptor(_Packed):
    """The device descriptor of one enumeration, with where it sits, as libusb1 reports it."""

    idVendor: int
    idProduct: int
    bcdDevice: int
    bDeviceClass: int
    bDeviceSubClass: int
    bDeviceProtocol: int
    bus: int
    address: int
    port_numbers: tuple[int, ...]
    bLength: ClassVar[int] = 18
    bDescriptorType: ClassVar[int] = 1
    bcdUSB: ClassVar[int] = 0x0200
    bMaxPacketSize0: ClassVar[int] = 64
    iManufacturer: ClassVar[int] = 1
    iProduct: ClassVar[int] = 2
    iSerialNumber: ClassVar[int] = 3
    bNumConfigurations: ClassVar[int] = 1
    speed: ClassVar[int] = 2  # LIBUSB_SPEED_FULL
    WIRE = (
        "<BBHBBBBHHHBBBB",
        "bLength bDescriptorType bcdUSB bDeviceClass bDeviceSubClass bDeviceProtocol "
        "bMaxPacketSize0 idVendor idProduct bcdDevice iManufacturer iProduct iSerialNumber "
        "bNumConfigurations",
    )

    @property
    def port_number(self) -> int:
        return self.port_numbers[-1]


@dataclass(frozen=True)
class Layout:
    """What a board shows on the bus in one mode."""

    mode: BusMode
    product_id: int
    bcd_device: int
    device_class: tuple[int, int, int]
    strings: tuple[str, str, str]
    """Manufacturer, product, serial number (string indexes 1, 2, 3)."""
    configuration: ConfigurationDescriptor
    dfu_interface: int | None = None
    functional: bytes = b""
    """The DFU functional descriptor, as GET_DESCRIPTOR(0x21) returns it."""

    def device(self, bus: int, address: int, ports: tuple[int, ...]) -> DeviceDescriptor:
        """The device descriptor of this layout enumerated at ``address``."""
        device_class, subclass, protocol = self.device_class
        return DeviceDescriptor(
            idVendor=ESPRESSIF_VID,
            idProduct=self.product_id,
            bcdDevice=self.bcd_device,
            bDeviceClass=device_class,
            bDeviceSubClass=subclass,
            bDeviceProtocol=protocol,
            bus=bus,
            address=address,
            port_numbers=ports,
        )


_COMPOSITE = (0xEF, 0x02, 0x01)  # miscellaneous device with interface associations
_IAD = bytes((8, 0x0B, 0, 2, 2, 2, 0, 0))  # interfaces 0-1 are one CDC-ACM function
_CDC_FUNCTIONAL = bytes(
    (
        *(5, 0x24, 0x00, 0x20, 0x01),  # header, CDC 1.20
        *(5, 0x24, 0x01, 0x00, 0x01),  # call management
        *(4, 0x24, 0x02, 0x02),  # abstract control management
        *(5, 0x24, 0x06, 0x00, 0x01),  # union: interface 0 controls 1
    )
)
_INTERRUPT, _BULK = 3, 2
_CDC = (
    InterfaceDescriptor(
        0, 0x02, 0x02, 0x00, (EndpointDescriptor(0x81, _INTERRUPT, 8, 16),), _CDC_FUNCTIONAL, True
    ),
    InterfaceDescriptor(
        1,
        0x0A,
        0x00,
        0x00,
        (EndpointDescriptor(0x02, _BULK, 64), EndpointDescriptor(0x82, _BULK, 64)),
        kernel_driver=True,
    ),
)
_JTAG_INTERFACE = InterfaceDescriptor(
    2, 0xFF, 0xFF, 0x01, (EndpointDescriptor(0x03, _BULK, 64), EndpointDescriptor(0x83, _BULK, 64))
)
_RUNTIME = rom.runtime_descriptor()
_DFU_MODE = rom.dfu_mode_descriptor()
"""The application's runtime interface is modelled on the ROM's (ESP-IDF's USB-CDC console)."""


def layout(
    chip: Chip,
    mode: BusMode,
    *,
    serial: str = "0",
    broken: bool = False,
    dfu_pid: int | None = None,
) -> Layout:
    """The descriptors of ``chip`` in ``mode``; ``broken``: a functional descriptor of 3 bytes.

    ``serial`` is used by the USB-Serial-JTAG peripheral only (its serial is the chip's MAC);
    the ROM says "0" on every board. ``dfu_pid`` is the DFU-mode PID when it is not the
    download mode's.
    """
    product = f"ESP32-{chip.name[5:].upper()}"
    if mode == "jtag":
        configuration = ConfigurationDescriptor((*_CDC, _JTAG_INTERFACE), _IAD)
        strings = ("Espressif", "USB JTAG/serial debug unit", serial)
        return Layout(mode, JTAG_PID, 0x0101, _COMPOSITE, strings, configuration)
    functional = _DFU_MODE if mode == "dfu" else _RUNTIME
    encoded = functional.encode()
    extra = bytes((3,)) + encoded[1:3] if broken else encoded
    if mode == "dfu":
        dfu = InterfaceDescriptor(0, DFU_CLASS, DFU_SUBCLASS, PROTOCOL_DFU, extra=extra)
        configuration = ConfigurationDescriptor((dfu,))
        strings = ("Espressif", product, "0")
        pid = rom.dfu_mode_pid(chip) if dfu_pid is None else dfu_pid
        return Layout(mode, pid, rom.BCD_DEVICE, (0, 0, 0), strings, configuration, 0, encoded)
    runtime = InterfaceDescriptor(2, DFU_CLASS, DFU_SUBCLASS, PROTOCOL_RUNTIME, extra=extra)
    configuration = ConfigurationDescriptor((*_CDC, runtime), _IAD)
    if mode == "app":  # an ESP-IDF application with TinyUSB's default strings
        strings = ("Espressif Systems", f"{product} app", "123456")
        return Layout(mode, APP_PID, 0x0100, _COMPOSITE, strings, configuration, 2, encoded)
    strings = ("Espressif", product, "0")
    return Layout(
        mode, chip.dfu_pid, rom.BCD_DEVICE, _COMPOSITE, strings, configuration, 2, encoded
    )


def jtag_serial(bus: int, ports: tuple[int, ...]) -> str:
    """A MAC-like serial, unique per port, as USB-Serial-JTAG reports the chip's MAC."""
    numbers = (0, 0, bus, *ports)[-3:]
    return "F4:12:FA:" + ":".join(f"{n:02X}" for n in numbers)


def string_descriptor(text: str) -> bytes:
    data = text.encode("utf-16-le")
    return bytes((2 + len(data), 3)) + data


LANGIDS = bytes((4, 3, 0x09, 0x04))  # US English only
