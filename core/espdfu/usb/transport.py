"""USB through pyusb: the world of devices, port paths, and DFU requests with failures in words.

A :class:`Usb` is a pyusb backend and, for a world that knows them itself, where its boards'
serial ports are: :func:`open_libusb` gives the libusb that libusb-package ships, else the
system's; :mod:`espdfu.worlds` chooses between it and virtual boards. Everything above this
module runs unchanged on any backend. On Linux, once an interface is claimed, its requests go
straight to the kernel through libusb's own usbfs file (one system call each, see
:func:`_usbfs_control`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import struct
import sys
import threading
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import usb.core
import usb.util

from ..errors import EspdfuError
from .protocol import (
    FUNCTIONAL_DESCRIPTOR_TYPE,
    REQUEST_IN,
    REQUEST_OUT,
    STATUS_LENGTH,
    Blocks,
    DeviceGone,
    FunctionalDescriptor,
    ProtocolError,
    Request,
    Sent,
    State,
    Status,
    StatusReply,
)
from .trace import BoardTrace

try:
    import fcntl
except ImportError:  # Windows: no usbfs either
    fcntl = None  # type: ignore[assignment]
DEFAULT_TIMEOUT_MS = 5000
_GET_DESCRIPTOR = 0x06
_STANDARD_IN_INTERFACE = 0x81


# --- failures of a USB request ----------------------------------------------------------------


class UsbFault(Exception):
    """A USB request failed; subclasses say how."""


class Stalled(UsbFault):
    """The device answered with a STALL (it refused the request)."""


class TimedOut(UsbFault):
    """The device did not answer in time."""


class NoPermission(UsbFault):
    """The operating system refused access to the device."""


class InUse(UsbFault):
    """Another program or driver holds the interface."""


class BlockFault(Exception):
    """A request of a run of blocks failed: ``request`` of the block after the ``done`` plain
    ones; ``fault`` is the failure as that request alone would have raised it."""

    def __init__(self, done: int, request: Request, fault: Exception) -> None:
        super().__init__(done, request, fault)
        self.done = done
        self.request = request
        self.fault = fault


class NoDriver(UsbFault):
    """libusb has no driver to reach the device through: Windows without WinUSB on it.

    libusb says LIBUSB_ERROR_NOT_SUPPORTED, which pyusb raises as ``NotImplementedError``,
    not as a ``USBError`` (or NOT_FOUND when it opens a composite device: :func:`open_device`).
    """


_ERRNO_FAULTS: dict[int, type[Exception]] = {
    errno.ETIMEDOUT: TimedOut,
    errno.EPIPE: Stalled,
    errno.ENODEV: DeviceGone,
    errno.ENOENT: DeviceGone,
    errno.ESHUTDOWN: DeviceGone,
    errno.EACCES: NoPermission,
    errno.EPERM: NoPermission,
    errno.EBUSY: InUse,
}
"""A failed request's errno (pyusb's, or usbfs's own) as one of ours."""


def _translate(error: usb.core.USBError) -> Exception:
    """The USB failure as one of ours; a vanished device is :class:`DeviceGone`."""
    if isinstance(error, usb.core.USBTimeoutError):
        return TimedOut(str(error))
    return _ERRNO_FAULTS.get(error.errno or 0, UsbFault)(str(error))


_LIBUSB_ERROR_NOT_FOUND = -5


def open_device(device: usb.core.Device) -> None:
    """Open ``device`` now (pyusb opens on first use); nothing is sent to it.

    Without a WinUSB-type driver, libusb_open on Windows fails in one of two ways (libusb's
    os/windows_winusb.c): LIBUSB_ERROR_NOT_SUPPORTED for a device of one interface, such as the
    DFU-mode device after DETACH, and LIBUSB_ERROR_NOT_FOUND for a composite device none of
    whose interfaces has one (``composite_open``), such as a board in download mode. Both are
    :class:`NoDriver`; Linux and macOS never fail an open with NOT_FOUND.
    """
    try:
        device._ctx.managed_open()
    except NotImplementedError as error:
        raise NoDriver(str(error)) from None
    except usb.core.USBError as error:
        if error.backend_error_code == _LIBUSB_ERROR_NOT_FOUND:
            raise NoDriver(str(error)) from None
        raise _translate(error) from None


# --- the backend ------------------------------------------------------------------------------


class UsbUnavailable(EspdfuError):
    """No libusb could be loaded."""


class SerialPorts(Protocol):
    """Where boards' serial ports are, by their USB port path."""

    def at(self, usb_path: str) -> str | None:
        """The serial port (a device to open) of the board at ``usb_path`` now, if any."""

    def espressif(self) -> list[str]:
        """The port paths of the Espressif boards that have a serial port now."""

    def bridges_beside(self, usb_path: str) -> list[tuple[str, str]]:
        """The USB-UART bridges at the other ports of the hub ``usb_path`` is on, as (their
        port path, what they are: ``CP210x at /dev/ttyUSB0``)."""


class BusNews(Protocol):
    """Word that a device came or went, from what knows it first (the kernel's uevents)."""

    def wait(self, timeout: float) -> bool:
        """Until a device comes or goes, ``timeout`` seconds, or :meth:`wake`: whether one did."""

    def wake(self) -> None:
        """End a :meth:`wait` at once."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Usb:
    """The USB world espdfu sees: a pyusb backend and what it is."""

    backend: Any
    description: str
    serial: SerialPorts | None = None
    """Where its boards' serial ports are, when the world knows that itself (virtual boards);
    None: the system's serial ports say (:mod:`espdfu.consoles.ports`)."""
    news: Callable[[], BusNews | None] | None = None
    """Opens a source of word that a device came or went (None: there is none: the hot-plug
    monitor polls only)."""

    def devices(self) -> Iterator[usb.core.Device]:
        """Every device on the buses now (descriptors only: nothing is opened)."""
        for dev in self.backend.enumerate_devices():
            yield usb.core.Device(dev, self.backend)

    def find(self, path: str) -> usb.core.Device | None:
        """The device at USB port path ``path`` now, if any."""
        for device in self.devices():
            if port_path(device) == path:
                return device
        return None


_lock = threading.Lock()
_libusb: Usb | None = None


def open_libusb() -> Usb:
    """libusb through pyusb (loaded once): libusb-package's own, else the system's."""
    global _libusb
    with _lock:
        if _libusb is None:
            _libusb = _load_libusb()
        return _libusb


def _load_libusb() -> Usb:
    """libusb-package's own libusb if it has one for this platform, else the system's."""
    import usb.backend.libusb1

    source = "libusb-package"
    packaged = _packaged_libusb()
    if packaged is not None:
        backend = usb.backend.libusb1.get_backend(find_library=lambda _: packaged)
    else:
        backend = None
        try:
            import libusb_package

            if libusb_package.get_library_path() is None:
                source = "the system"
            backend = libusb_package.get_libusb1_backend()
        except ImportError:
            pass
    if backend is None:
        source = "the system"
        backend = usb.backend.libusb1.get_backend()
    if backend is None:
        raise UsbUnavailable(
            "No libusb 1.0 library could be loaded, so USB devices cannot be reached.",
            "Reinstall espdfu-tui (libusb-package ships one), or install libusb 1.0 "
            "(Debian/Ubuntu: sudo apt install libusb-1.0-0; macOS: brew install libusb).",
        )
    from .uevents import kernel_uevents

    description = f"libusb {_libusb_version(backend)} from {source}"
    return Usb(backend, description, news=kernel_uevents)


_LIBUSB_FILE = {"darwin": "libusb-1.0.dylib", "win32": "libusb-1.0.dll"}.get(
    sys.platform, "libusb-1.0.so"
)


def _packaged_libusb() -> str | None:
    """The library file in libusb-package's folder, found as Python would find the package.

    Importing libusb-package to ask it imports importlib_resources too: 0.2 s of espdfu's
    start-up before the DETACH in the QEMU guest (docs/real-usb.md). When the package is not
    a plain folder (a zip, say), None: then the package itself is asked.
    """
    for entry in sys.path:
        folder = Path(entry or ".", "libusb_package")
        if folder.is_dir():
            library = folder / _LIBUSB_FILE
            return str(library) if library.is_file() else None
    return None


def _libusb_version(backend: Any) -> str:
    class Version(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint16) for name in ("major", "minor", "micro", "nano")]

    try:
        get_version = backend.lib.libusb_get_version
        get_version.restype = ctypes.POINTER(Version)
        version = get_version().contents
        where = getattr(backend.lib, "_name", "")
    except (AttributeError, ValueError):
        return "(version unknown)"
    return f"{version.major}.{version.minor}.{version.micro} ({where})"


def port_order(path: str) -> tuple[int, ...]:
    """A sort key that puts "1-1.2" before "1-1.10" (numbers, not text)."""
    return tuple(int(part) for part in path.replace("-", ".").split(".") if part.isdigit())


def port_path(device: usb.core.Device) -> str | None:
    """The USB port path in dfu-util's form, ``<bus>-<port>.<port>…``; stable across resets."""
    ports = getattr(device, "port_numbers", None)
    if not ports:
        return None
    return f"{device.bus}-{'.'.join(str(port) for port in ports)}"


# --- control transfers, the shortest way ------------------------------------------------------

_Control = Callable[[int, int, int, int, "bytes | memoryview", int, int], bytes]
"""(request type, request, value, index, data out, length, timeout ms) → data in (as
:data:`espdfu.usb.trace.Control`)."""

_LIBUSB_ERRORS: dict[int, type[Exception]] = {
    -3: NoPermission,  # LIBUSB_ERROR_ACCESS
    -4: DeviceGone,  # LIBUSB_ERROR_NO_DEVICE
    -5: DeviceGone,  # LIBUSB_ERROR_NOT_FOUND
    -6: InUse,  # LIBUSB_ERROR_BUSY
    -7: TimedOut,  # LIBUSB_ERROR_TIMEOUT
    -9: Stalled,  # LIBUSB_ERROR_PIPE
    -12: NoDriver,  # LIBUSB_ERROR_NOT_SUPPORTED
}


_Transfer = Callable[[int, int, int, int, int, int], int]
"""(request type, request, value, index, length, timeout ms) → bytes transferred, the data
in the buffer the transfer was made with."""
_BUFFER_SIZE = 4096


def _through(view: memoryview, transfer: _Transfer) -> _Control:
    """A :data:`_Control` made of ``transfer`` on the buffer ``view`` shows: data out is
    copied in first, data in is copied out after."""

    def control(
        request_type: int, request: int, value: int, index: int, data: bytes | memoryview,
        length: int, timeout: int,
    ) -> bytes:  # fmt: skip
        if data:
            view[:length] = data
        count = transfer(request_type, request, value, index, length, timeout)
        return view[:count].tobytes() if request_type & 0x80 else b""

    return control


def _libusb_control(backend: Any, handle: Any) -> _Control | None:
    """libusb_control_transfer on a buffer of our own, when the backend is pyusb's libusb1."""
    lib = getattr(backend, "lib", None)
    device = getattr(handle, "handle", None)
    if lib is None or device is None or not hasattr(lib, "libusb_control_transfer"):
        return None
    buffer = (ctypes.c_ubyte * _BUFFER_SIZE)()
    call = lib.libusb_control_transfer

    def transfer(request_type: int, request: int, value: int, index: int, length: int,
                 timeout: int) -> int:  # fmt: skip
        result: int = call(device, request_type, request, value, index, buffer, length, timeout)
        if result < 0:
            raise _LIBUSB_ERRORS.get(result, UsbFault)(f"libusb error {result}")
        return result

    return _through(memoryview(buffer).cast("B"), transfer)


_USBFS_CONTROL = struct.Struct("@BBHHHIP")
"""struct usbdevfs_ctrltransfer (linux/usbdevice_fs.h): request type, request, value, index,
length, timeout in ms, and the address of the data; native layout, as the kernel's."""
_USBDEVFS_CONTROL = (3 << 30) | (_USBFS_CONTROL.size << 16) | (ord("U") << 8)
"""_IOWR('U', 0, struct usbdevfs_ctrltransfer), in the encoding of x86, Arm and RISC-V (where
another encoding applies, the probe in :func:`_usbfs_control` fails and libusb is used)."""
_GET_STATUS = 0x00
_STANDARD_IN_DEVICE = 0x80
_PROBE_TIMEOUT_MS = 1000


def _usbfs_file(device: usb.core.Device) -> int | None:
    """The file descriptor libusb holds for ``device`` (Linux: its usbfs node), else None.

    libusb's Linux backend opens /dev/bus/usb/BBB/DDD and claims interfaces through that file;
    usbfs takes an interface's requests only from the file that claimed it, so the short way
    must use the same one. libusb does not hand it out: /proc/self/fd names it.
    """
    bus, address = getattr(device, "bus", None), getattr(device, "address", None)
    if fcntl is None or bus is None or address is None:
        return None
    node = Path(f"/dev/bus/usb/{bus:03d}/{address:03d}")
    with contextlib.suppress(OSError):
        for link in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):
                if link.readlink() == node:
                    return int(link.name)
    return None


_Ioctl = Callable[[int, int, bytearray, bool], int]
"""fcntl.ioctl as the usbfs route calls it: (file, request, the request block, mutate)."""
_SendBlocks = Callable[[int, int, Blocks], Sent]
"""(interface, timeout ms, a run of blocks) → how the run went; a failed request raises
:class:`BlockFault`."""


def _usbfs_control(device: usb.core.Device) -> tuple[_Control, _SendBlocks] | None:
    """Control transfers as USBDEVFS_CONTROL ioctls on libusb's usbfs file, when there is one,
    and runs of blocks sent so (:func:`_usbfs_blocks`).

    libusb's synchronous transfer submits an URB, polls and reaps it (six system calls and its
    event loop's locks per request); the kernel's synchronous USBDEVFS_CONTROL does the same
    transfer in one. libusb keeps discovery, the claim and everything else. One standard
    GET_STATUS to the device (which every USB device answers, USB 2.0 §9.4.5) proves the
    route before it is used; when it fails the route is not taken.
    """
    file = _usbfs_file(device)
    if file is None:
        return None
    control, send_blocks = _usbfs_route(file, fcntl.ioctl)
    try:
        control(_STANDARD_IN_DEVICE, _GET_STATUS, 0, 0, b"", 2, _PROBE_TIMEOUT_MS)
    except UsbFault:
        return None
    return control, send_blocks


def _usbfs_route(file: int, ioctl: _Ioctl) -> tuple[_Control, _SendBlocks]:
    """The usbfs route on ``file``, through ``ioctl`` (a test's own stands in for the kernel)."""
    buffer = array("B", bytes(_BUFFER_SIZE))
    request_block = bytearray(_USBFS_CONTROL.size)
    pack = _USBFS_CONTROL.pack_into
    address = buffer.buffer_info()[0]

    def transfer(request_type: int, request: int, value: int, index: int, length: int,
                 timeout: int) -> int:  # fmt: skip
        pack(request_block, 0, request_type, request, value, index, length, timeout, address)
        try:
            count: int = ioctl(file, _USBDEVFS_CONTROL, request_block, True)
        except OSError as error:
            raise _usbfs_fault(error) from None
        return count

    return _through(memoryview(buffer), transfer), _usbfs_blocks(file, ioctl)


def _usbfs_fault(error: OSError) -> Exception:
    """A failed USBDEVFS_CONTROL as one of ours."""
    return _ERRNO_FAULTS.get(error.errno or 0, UsbFault)(f"usbfs: {error.strerror}")


_DNLOAD, _GETSTATUS = Request.DNLOAD, Request.GETSTATUS
_OK, _IDLE = int(Status.OK), int(State.DNLOAD_IDLE)


def _usbfs_blocks(file: int, ioctl: _Ioctl) -> _SendBlocks:
    """Runs of blocks sent in a loop that costs little more than its ioctls.

    Request by request, each block went through the download's generator, a step, the
    flasher's bookkeeping, a copy in, a copy of the answer out and its decoding: under
    software emulation (the QEMU guest) that made a request cost 1.7 times the bare ioctl.
    Here the run is copied once, each DNLOAD's request block points into it (only wValue,
    wLength and the address change), the GETSTATUS request block is made once per run, and
    its answer is looked at where the kernel wrote it. The first answer other than status OK,
    dfuDNLOAD-IDLE ends the loop, decoded, for the download's general logic.
    """
    run = array("B")
    status = array("B", bytes(STATUS_LENGTH))
    dnload = bytearray(_USBFS_CONTROL.size)
    get_status = bytearray(_USBFS_CONTROL.size)
    pack = _USBFS_CONTROL.pack_into

    def send_blocks(index: int, timeout: int, blocks: Blocks) -> Sent:
        pack(get_status, 0, REQUEST_IN, _GETSTATUS, 0, index, STATUS_LENGTH, timeout,
             status.buffer_info()[0])  # fmt: skip
        del run[:]
        run.frombytes(blocks.data)
        start, size = run.buffer_info()[0], blocks.size
        end = start + len(run)
        first = number = blocks.first
        request = _DNLOAD
        try:
            for address in range(start, end, size):
                pack(dnload, 0, REQUEST_OUT, _DNLOAD, number & 0xFFFF, index,
                     min(size, end - address), timeout, address)  # fmt: skip
                request = _DNLOAD
                ioctl(file, _USBDEVFS_CONTROL, dnload, True)
                request = _GETSTATUS
                count = ioctl(file, _USBDEVFS_CONTROL, get_status, True)
                if count != STATUS_LENGTH or status[0] != _OK or status[4] != _IDLE:
                    return Sent(number - first, StatusReply.decode(status[:count].tobytes()))
                number += 1
        except OSError as error:
            raise BlockFault(number - first, request, _usbfs_fault(error)) from None
        except ProtocolError as error:
            raise BlockFault(number - first, request, error) from None
        return Sent(number - first)

    return send_blocks


def _backend_control(backend: Any, handle: Any) -> _Control:
    """The backend's own ctrl_transfer (virtual boards, other backends)."""

    def control(
        request_type: int, request: int, value: int, index: int, data: bytes | memoryview,
        length: int, timeout: int,
    ) -> bytes:  # fmt: skip
        buffer = array("B")  # frombytes takes a memoryview whole; the constructor iterates it
        buffer.frombytes(data if data or not request_type & 0x80 else bytes(length))
        try:
            count = backend.ctrl_transfer(
                handle, request_type, request, value, index, buffer, timeout
            )
        except usb.core.USBError as error:
            raise _translate(error) from None
        except NotImplementedError as error:
            raise NoDriver(str(error)) from None
        return buffer[:count].tobytes() if request_type & 0x80 else b""

    return control


def _unclaimed(*_: object) -> bytes:
    raise ProtocolError("the interface was not claimed")


def _fastest_control(device: usb.core.Device) -> tuple[str, _Control, _SendBlocks | None]:
    """The shortest way to ``device``'s claimed interfaces, its name, and its own loop for
    runs of blocks, if it has one."""
    context = device._ctx
    direct = _libusb_control(context.backend, context.handle)
    if direct is None:
        return "backend", _backend_control(context.backend, context.handle), None
    usbfs = _usbfs_control(device)
    return ("usbfs", *usbfs) if usbfs is not None else ("libusb", direct, None)


# --- one open DFU interface -------------------------------------------------------------------


class DfuInterface:
    """The DFU requests on one interface of one device, with failures translated."""

    def __init__(
        self,
        device: usb.core.Device,
        interface: int,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        trace: BoardTrace | None = None,
    ) -> None:
        self.device = device
        self.interface = interface
        self.timeout_ms = timeout_ms
        self.trace = trace
        """Where every request is written down, when the flash is traced."""
        self._control: _Control = _unclaimed
        self.route = ""
        """How requests travel once claimed: "usbfs", "libusb" or "backend" (virtual boards)."""
        self.send_blocks: Callable[[Blocks], Sent] | None = None
        """Once claimed, where the route has a loop of its own for runs of blocks (usbfs) and
        the requests are not traced: it sends a run (a failed request raises
        :class:`BlockFault`). None: each request goes alone."""

    def claim(self) -> None:
        """Claim the interface; from then on requests take the shortest way to the device."""
        open_device(self.device)  # first: a NOT_FOUND from the open means something else
        self._call(usb.util.claim_interface, self.device, self.interface)
        # pyusb's Device.ctrl_transfer re-checks the handle and the claim and converts the
        # buffers on every call, and its libusb backend casts a pointer each time; a download
        # makes two calls per 64-byte block, so once claimed the open handle is used directly:
        # on Linux the kernel's usbfs, else libusb_control_transfer on a buffer kept for the
        # job, else the backend's own call (virtual boards).
        self.route, self._control, send_blocks = _fastest_control(self.device)
        if self.trace is not None:  # only then: an untraced request pays nothing for it
            self.trace.event("claimed", interface=self.interface, route=self.route)
            self._control = self.trace.traced(self._control)
        elif send_blocks is not None:
            self.send_blocks = functools.partial(send_blocks, self.interface, self.timeout_ms)

    def send(
        self, request: Request, value: int = 0, data: bytes | memoryview = b"", timeout_ms: int = 0
    ) -> None:
        """A host-to-device DFU request (DETACH, DNLOAD, CLRSTATUS, ABORT).

        ``timeout_ms``: how long the device may take to answer, when not the usual time.
        """
        self._control(
            REQUEST_OUT, request, value, self.interface, data, len(data),
            timeout_ms or self.timeout_ms,
        )  # fmt: skip

    def get_status(self, timeout_ms: int = 0) -> StatusReply:
        reply = self._control(
            REQUEST_IN, Request.GETSTATUS, 0, self.interface, b"", STATUS_LENGTH,
            timeout_ms or self.timeout_ms,
        )  # fmt: skip
        return StatusReply.decode(reply)

    def functional_descriptor(self) -> FunctionalDescriptor | None:
        """Ask the device for its DFU functional descriptor (when the config does not carry it)."""
        ask = self._pyusb_control if self.trace is None else self.trace.traced(self._pyusb_control)
        try:
            reply = ask(
                _STANDARD_IN_INTERFACE,
                _GET_DESCRIPTOR,
                FUNCTIONAL_DESCRIPTOR_TYPE << 8,
                self.interface,
                b"",
                FunctionalDescriptor.FORMAT.size,
                self.timeout_ms,
            )
        except UsbFault:
            return None
        return FunctionalDescriptor.decode(reply)

    def _pyusb_control(
        self, request_type: int, request: int, value: int, index: int, data: bytes | memoryview,
        length: int, timeout: int,
    ) -> bytes:  # fmt: skip
        """A device-to-host request through pyusb (which checks the claim and the handle)."""
        return bytes(
            self._call(
                self.device.ctrl_transfer, request_type, request, value, index, length, timeout
            )
        )

    def reset(self) -> None:
        """A USB port reset: the device re-enumerates."""
        if self.trace is not None:
            self.trace.event("usb_reset")
        self._call(self.device.reset)

    def close(self) -> None:
        """Release the interface and close the device; never fails."""
        with contextlib.suppress(usb.core.USBError, ValueError):
            usb.util.release_interface(self.device, self.interface)
        usb.util.dispose_resources(self.device)

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except usb.core.USBError as error:
            raise _translate(error) from None
        except NotImplementedError as error:
            raise NoDriver(str(error)) from None
        except (ValueError, IndexError) as error:  # pyusb on a malformed reply
            raise ProtocolError(str(error)) from None
