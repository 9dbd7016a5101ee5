"""Virtual boards on a virtual bus, served to pyusb as a backend (``usb.backend.IBackend``).

pyusb, and the discovery and flashing code above it, run unchanged: ``usb.core.find(
find_all=True, backend=SimBackend(bus))``. The backend plays libusb and the host's kernel:
enumeration snapshots, handles, interface claims, bound kernel drivers (cdc_acm on the CDC
interfaces) and libusb's error codes; the boards play the devices.
"""

from __future__ import annotations

import itertools
import re
import threading
from array import array

import usb.backend

from ..errors import InputError
from .board import BoardKind, Enumeration, VirtualBoard
from .descriptors import (
    ConfigurationDescriptor,
    DeviceDescriptor,
    EndpointDescriptor,
    InterfaceDescriptor,
    Libusb,
    usb_error,
)
from .spec import parse_boards
from .timing import WALL_CLOCK, Clock, TimeModel

Location = tuple[int, tuple[int, ...]]
"""Bus number and port numbers."""

_PATH = re.compile(r"(\d{1,3})-(\d{1,3}(?:\.\d{1,3}){0,6})", re.ASCII)
_PORTS_PER_HUB = 4
_FIRST_ADDRESS, _LAST_ADDRESS = 2, 127  # address 1 is the root hub's
_RECIPIENT_INTERFACE, _TYPE_VENDOR = 0x01, 0x40


def parse_path(path: str) -> Location:
    """Read a port path in dfu-util's form, "1-3.2": bus 1, port 3 of the root, port 2 below."""
    match = _PATH.fullmatch(path.strip())
    numbers = [int(n) for n in match.group(2).split(".")] if match else []
    if match is None or not 0 < int(match.group(1)) < 256 or not all(0 < n < 256 for n in numbers):
        raise InputError(
            f"'{path}' is not a USB port path: write the bus number, a dash and the port "
            "numbers joined by dots, such as 1-1.2."
        )
    return int(match.group(1)), tuple(numbers)


def format_path(location: Location) -> str:
    bus, ports = location
    return f"{bus}-{'.'.join(str(port) for port in ports)}"


class SimBus:
    """USB buses with virtual boards: boards by port path, device addresses, the time model.

    ``clock`` is the time its boards live in: the machine's, or a test's model clock, on which
    a timing is a fact of the model rather than of how busy the machine was. Its lock is held
    briefly, never while sleeping, and whoever holds it never waits for a board's lock (boards
    take it under theirs, to get an address).
    """

    def __init__(self, time: TimeModel | None = None, clock: Clock = WALL_CLOCK) -> None:
        self.time = time if time is not None else TimeModel.realistic()
        self.clock = clock
        self._lock = threading.Lock()
        self._boards: dict[str, VirtualBoard] = {}
        self._addresses: set[tuple[int, int]] = set()
        self._next_address = _FIRST_ADDRESS

    @classmethod
    def from_spec(cls, spec: str, *, time: TimeModel | None = None) -> SimBus:
        """A bus with the boards ``spec`` names ("esp32s2*3,esp32s3-jtag,esp32s2:pull@64K"), with
        their faults, plugged in order."""
        bus = cls(time)
        for board in parse_boards(spec):
            bus.plug(board.board())
        return bus

    def plug(self, board: VirtualBoard, path: str | None = None) -> VirtualBoard:
        """Plug ``board`` in at ``path``, or at the next free port: 1-1.1, 1-1.2, … 1-2.1, …"""
        with self._lock:
            if path is None:
                free = (_auto_location(n) for n in itertools.count())
                location = next(place for place in free if format_path(place) not in self._boards)
            else:
                location = parse_path(path)
            path = format_path(location)
            if path in self._boards:
                raise InputError(f"There is already a board at port {path}.")
            self._boards[path] = board
        try:
            board._attach(self, path, location)
        except BaseException:
            with self._lock:
                del self._boards[path]
            raise
        return board

    def unplug(self, path: str) -> None:
        self.board(path).unplug()

    def board(self, path: str) -> VirtualBoard:
        with self._lock:
            found = self._boards.get(path)
        if found is None:
            raise KeyError(f"no board was plugged in at {path}")
        return found

    @property
    def boards(self) -> dict[str, VirtualBoard]:
        """Every board plugged in, by port path, whether it is on the bus now or not."""
        with self._lock:
            return dict(self._boards)

    def enumerations(self) -> list[Enumeration]:
        """What is on the bus now, after the arrivals that have come due."""
        with self._lock:
            boards = list(self._boards.values())
        return [found for found in (board.enumeration() for board in boards) if found]

    def _allocate_address(self, bus: int) -> int:
        """The next free address on ``bus``, round robin as Linux gives them.

        Past 126 devices on one bus (the USB limit) it goes on above 127, so that every
        device keeps a distinct address.
        """
        with self._lock:
            span = _LAST_ADDRESS - _FIRST_ADDRESS + 1
            start = self._next_address - _FIRST_ADDRESS
            candidates = itertools.chain(
                ((start + n) % span + _FIRST_ADDRESS for n in range(span)),
                itertools.count(_LAST_ADDRESS + 1),
            )
            address = next(a for a in candidates if (bus, a) not in self._addresses)
            self._addresses.add((bus, address))
            self._next_address = (address - _FIRST_ADDRESS + 1) % span + _FIRST_ADDRESS
            return address

    def _release_address(self, bus: int, address: int) -> None:
        with self._lock:
            self._addresses.discard((bus, address))


def _auto_location(n: int) -> Location:
    """Board n in plug order: four-port hubs on the ports of bus 1's root hub."""
    return 1, (n // _PORTS_PER_HUB + 1, n % _PORTS_PER_HUB + 1)


class _Handle:
    """An open device: the enumeration it was opened on and the interfaces it claimed."""

    __slots__ = ("claimed", "enumeration")

    def __init__(self, enumeration: Enumeration) -> None:
        self.enumeration = enumeration
        self.claimed: set[int] = set()


class SimBackend(usb.backend.IBackend):  # type: ignore[misc]
    """pyusb's backend interface over a :class:`SimBus`, behaving as libusb on Linux (and on
    Windows without a driver, for the kinds that model that).

    Bulk and interrupt transfers are not modelled (NotImplementedError, the interface's
    default). Every method is safe to call from any thread.
    """

    def __init__(self, bus: SimBus) -> None:
        super().__init__()
        self.bus = bus

    # --- enumeration and descriptors ----------------------------------------------------------

    def enumerate_devices(self) -> list[Enumeration]:
        return self.bus.enumerations()

    def get_parent(self, dev: Enumeration) -> None:
        return None

    def get_device_descriptor(self, dev: Enumeration) -> DeviceDescriptor:
        return dev.descriptor

    def get_configuration_descriptor(
        self, dev: Enumeration, config: int
    ) -> ConfigurationDescriptor:
        if config != 0:
            raise usb_error(Libusb.NOT_FOUND)
        return dev.layout.configuration

    def get_interface_descriptor(
        self, dev: Enumeration, intf: int, alt: int, config: int
    ) -> InterfaceDescriptor:
        interfaces = self.get_configuration_descriptor(dev, config).interfaces
        if intf >= len(interfaces):
            raise IndexError(f"Invalid interface index {intf}")
        if alt >= 1:
            raise IndexError(f"Invalid alternate setting index {alt}")
        return interfaces[intf]

    def get_endpoint_descriptor(
        self, dev: Enumeration, ep: int, intf: int, alt: int, config: int
    ) -> EndpointDescriptor:
        endpoints = self.get_interface_descriptor(dev, intf, alt, config).endpoints
        if ep >= len(endpoints):
            raise IndexError(f"Invalid endpoint index {ep}")
        return endpoints[ep]

    # --- handles --------------------------------------------------------------------------------

    def open_device(self, dev: Enumeration) -> _Handle:
        if dev.gone:
            raise usb_error(Libusb.NO_DEVICE)
        if dev.board.kind is BoardKind.NO_ACCESS:
            raise usb_error(Libusb.ACCESS)
        if dev.board.kind.lacks_driver(dev.layout.mode):
            # libusb on Windows (os/windows_winusb.c): a composite device none of whose
            # interfaces has a WinUSB-type driver fails in composite_open with NOT_FOUND, a
            # single-interface device without one with NOT_SUPPORTED (NotImplementedError).
            composite = len(dev.layout.configuration.interfaces) > 1
            raise usb_error(Libusb.NOT_FOUND if composite else Libusb.NOT_SUPPORTED)
        return _Handle(dev)

    def close_device(self, dev_handle: _Handle) -> None:
        device = dev_handle.enumeration
        with device.lock:
            for interface in dev_handle.claimed:
                device.claims.pop(interface, None)
            dev_handle.claimed.clear()

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        """As usbfs: refused while any interface is claimed or has a kernel driver bound."""
        device = _alive(dev_handle)
        with device.lock:
            if device.claims or device.drivers:
                raise usb_error(Libusb.BUSY)
            if config_value not in (-1, 0, device.layout.configuration.bConfigurationValue):
                raise usb_error(Libusb.NOT_FOUND)
            device.configuration = max(config_value, 0)

    def get_configuration(self, dev_handle: _Handle) -> int:
        return _alive(dev_handle).configuration

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        device = _alive(dev_handle)
        if device.claims.get(intf) is not dev_handle or altsetting != 0:
            raise usb_error(Libusb.NOT_FOUND)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        code = _claim(dev_handle, intf)
        if code is not None:
            raise usb_error(code)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        device = _alive(dev_handle)
        with device.lock:
            if device.claims.get(intf) is not dev_handle:
                raise usb_error(Libusb.NOT_FOUND)
            del device.claims[intf]
            dev_handle.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        device = _alive(dev_handle)
        if _interface(device, intf) is None:
            raise usb_error(Libusb.NOT_FOUND)
        return intf in device.drivers

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        device = _alive(dev_handle)
        with device.lock:
            if intf not in device.drivers:
                raise usb_error(Libusb.NOT_FOUND)
            device.drivers.discard(intf)

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        device = _alive(dev_handle)
        interface = _interface(device, intf)
        with device.lock:
            if intf in device.claims or intf in device.drivers:
                raise usb_error(Libusb.BUSY)
            if interface is None or not interface.kernel_driver:
                raise usb_error(Libusb.NOT_FOUND)
            device.drivers.add(intf)

    # --- transfers -----------------------------------------------------------------------------

    def ctrl_transfer(
        self,
        dev_handle: _Handle,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array[int],
        timeout: int,
    ) -> int:
        interface = wIndex & 0xFF
        if (
            bmRequestType & 0x1F == _RECIPIENT_INTERFACE
            and bmRequestType & 0x60 != _TYPE_VENDOR
            and interface not in dev_handle.claimed
        ):
            # usbfs claims the interface itself; libusb reports a refusal as an I/O error.
            code = _claim(dev_handle, interface)
            if code is not None:
                raise usb_error(code if code is Libusb.NO_DEVICE else Libusb.IO)
        device = dev_handle.enumeration
        return device.board.control(device, bmRequestType, bRequest, wValue, wIndex, data, timeout)

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        device = _alive(dev_handle)
        interfaces = device.layout.configuration.interfaces
        if all(e.bEndpointAddress != ep for i in interfaces for e in i.endpoints):
            raise usb_error(Libusb.NOT_FOUND)

    def reset_device(self, dev_handle: _Handle) -> None:
        device = dev_handle.enumeration
        device.board.usb_reset(device)


def _alive(handle: _Handle) -> Enumeration:
    if handle.enumeration.gone:
        raise usb_error(Libusb.NO_DEVICE)
    return handle.enumeration


def _interface(device: Enumeration, number: int) -> InterfaceDescriptor | None:
    interfaces = device.layout.configuration.interfaces
    return next((i for i in interfaces if i.bInterfaceNumber == number), None)


def _claim(handle: _Handle, number: int) -> Libusb | None:
    """Claim an interface for ``handle``; the libusb error when that is refused."""
    if handle.enumeration.gone:
        return Libusb.NO_DEVICE
    device = handle.enumeration
    if _interface(device, number) is None:
        return Libusb.NOT_FOUND
    with device.lock:
        owner = device.claims.get(number)
        if owner is handle:
            return None
        if owner is not None or number in device.drivers:
            return Libusb.BUSY
        device.claims[number] = handle
        handle.claimed.add(number)
    return None
