"""The kernel's word that a USB device came or went (Linux's uevents, over netlink), so that the
hot-plug monitor looks at once rather than at its next poll.

libusb's hot-plug callbacks would say the same (libusb listens to the same uevents), but pyusb
does not expose them and its context is its own: registering a callback through ctypes on it
and running libusb's event loop beside pyusb's calls would be a second owner of that context.
A uevent is only a cue: the monitor still asks libusb what is on the bus (its device list takes
in the pending uevents before answering), and still polls, more slowly, for whatever a cue
misses (no netlink in a container, a message lost when the socket's buffer overflowed).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading

NETLINK_KOBJECT_UEVENT = 15
"""linux/netlink.h: the kernel's uevents; multicast group 1 is the kernel's own (udevd's
re-broadcast is group 2, on systems that run it)."""
_KERNEL_GROUP = 1
_ACTIONS = frozenset({"add", "remove"})


def is_usb_device_event(message: bytes) -> bool:
    """Whether a uevent says a USB device (not one of its interfaces) was added or removed:
    ``add@/devices/…/1-1\\0ACTION=add\\0…SUBSYSTEM=usb\\0DEVTYPE=usb_device\\0…``."""
    fields = dict(
        part.split("=", 1)
        for part in message.decode("utf-8", "replace").split("\0")[1:]
        if "=" in part
    )
    return (
        fields.get("SUBSYSTEM") == "usb"
        and fields.get("DEVTYPE") == "usb_device"
        and fields.get("ACTION") in _ACTIONS
    )


class KernelUevents:
    """A netlink socket on the kernel's uevents: the :class:`~espdfu.usb.transport.BusNews` of
    real USB on Linux. Opening it needs no privilege."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
        try:
            self._socket.bind((0, _KERNEL_GROUP))
            self._socket.setblocking(False)
            self._wake_read, self._wake_write = os.pipe()
        except OSError:
            self._socket.close()
            raise
        os.set_blocking(self._wake_read, False)
        self._lock = threading.Lock()
        self._closed = False

    def wait(self, timeout: float) -> bool:
        """Until a USB device comes or goes, ``timeout`` seconds, or :meth:`wake`: whether one
        came or went."""
        watched = [self._socket.fileno(), self._wake_read]
        ready, _, _ = select.select(watched, [], [], max(timeout, 0.0))
        if self._wake_read in ready:
            with contextlib.suppress(OSError):
                os.read(self._wake_read, 64)
        news = False
        while watched[0] in ready:
            try:
                news = is_usb_device_event(self._socket.recv(65536)) or news
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: messages were lost; a look tells what they said
                return True
        return news

    def wake(self) -> None:
        """End a :meth:`wait` at once (the monitor stops); nothing once closed, when the pipe's
        file number may already be another file's."""
        with self._lock:
            if not self._closed:
                with contextlib.suppress(OSError):
                    os.write(self._wake_write, b"!")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._socket.close()
            for end in (self._wake_read, self._wake_write):
                with contextlib.suppress(OSError):
                    os.close(end)


def kernel_uevents() -> KernelUevents | None:
    """The kernel's uevents, where there are (Linux with netlink); else None: polling only."""
    try:
        return KernelUevents()
    except (OSError, AttributeError):  # no AF_NETLINK (macOS, Windows), or none allowed here
        return None
