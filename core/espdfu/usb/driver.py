"""The one loop that carries out a DFU exchange: each step sent when it is due, its reply fed back.

:func:`espdfu.usb.protocol.download` and :func:`~espdfu.usb.protocol.recover` decide what to send;
:func:`drive` sends it, through whatever ``perform`` talks to (libusb in the flasher, virtual
boards and the QEMU gadget's ROM model in the tests), and waits out the poll timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .protocol import Blocks, DeviceGone, Exchange, Reply, Sent, Step, each_request

_R = TypeVar("_R")


def drive(
    steps: Exchange[_R],
    perform: Callable[[Step], Reply],
    wait: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    send_blocks: Callable[[Blocks], Sent] | None = None,
) -> _R:
    """Send every step with ``perform`` when it is due; return what ``steps`` returns.

    ``perform`` sends one step and returns the decoded status for GETSTATUS, None for other
    requests; ``send_blocks`` sends a run of plain blocks at once (without it, each of their
    requests goes through ``perform``: :func:`~espdfu.usb.protocol.each_request`). The
    :class:`DeviceGone` they raise is thrown into ``steps`` (after the final block that is
    how a device that resets itself ends the download); anything else they raise, and every
    error of ``steps``, propagates.

    A step's ``wait_ms`` (the poll timeout of a device that said it was busy) counts from
    when ``clock`` saw that GETSTATUS answered; ``wait`` is given what is left of it, in
    seconds, and only when something is left (a run of blocks never waits: it follows an
    idle answer). Nothing else happens between two steps: a caller that cancels or reports
    progress does it in ``perform`` and ``send_blocks`` (and in ``wait``).
    """
    answered = 0.0  # when the last GETSTATUS that asked for a wait was answered
    run = send_blocks or (lambda blocks: each_request(blocks, perform))
    try:
        step = next(steps)
        while True:
            if not isinstance(step, Blocks) and step.wait_ms:
                left = answered + step.wait_ms / 1000 - clock()
                if left > 0:
                    wait(left)
            try:
                result = run(step) if isinstance(step, Blocks) else perform(step)
            except DeviceGone as gone:
                step = steps.throw(gone)
                continue
            reply = result.reply if isinstance(result, Sent) else result
            if reply is not None and reply.poll_timeout_ms:  # the clock only when it matters
                answered = clock()
            step = steps.send(result)
    except StopIteration as stop:
        value: _R = stop.value
        return value
