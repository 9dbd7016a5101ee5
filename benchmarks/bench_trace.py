"""What tracing a flash costs: host CPU with and without ``--trace``, and the trace's size.

On instant virtual boards (no device time at all) a flash is nothing but the host's work, so
the ratio is tracing's whole cost per request: encoding each request's line as JSON and
writing it. Untraced, nothing is wrapped (tests/core/usb/test_trace.py checks that).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench_flash import _image
from espdfu.files.dfufile import DfuImage
from espdfu.flashing.flasher import FlashOptions, flash
from espdfu.sim import SimBus, TimeModel, virtual_usb
from espdfu.usb.trace import TraceFile
from run import Row, Section, markdown_table

KIB = 1024


def _flash_cpu(image: DfuImage, trace: TraceFile | None) -> float:
    """The CPU seconds one flash of ``image`` takes on an instant virtual board."""
    bus = SimBus.from_spec("esp32s2", time=TimeModel.instant())
    usb = virtual_usb(bus, "virtual boards")
    (path,) = bus.boards
    start = time.process_time()
    result = flash(usb, path, image, options=FlashOptions(trace=trace))
    cpu = time.process_time() - start
    if not result.ok:
        raise RuntimeError(f"a benchmark flash failed: {result.message}")
    return cpu


def run(quick: bool) -> Section:
    size = (256 if quick else 1024) * KIB
    repeats = 1 if quick else 5
    image = _image(size)
    plain, traced, sizes, lines = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for number in range(repeats):  # in turns, so that both meet the same machine
            plain.append(_flash_cpu(image, None))
            path = Path(folder, f"{number}.jsonl")
            trace = TraceFile(path)
            traced.append(_flash_cpu(image, trace))
            trace.close()
            sizes.append(path.stat().st_size)
            lines.append(len(path.read_bytes().splitlines()))
    requests = lines[0] - 20  # the decisions' lines, about 20, are not requests
    ratio = statistics.median(traced) / statistics.median(plain)
    per_request_us = (statistics.median(traced) - statistics.median(plain)) / requests * 1e6
    table = markdown_table(
        ["Flash", "CPU s: median", "min", "max"],
        [
            [name, f"{statistics.median(v):.3f}", f"{min(v):.3f}", f"{max(v):.3f}"]
            for name, v in (("untraced", plain), ("traced (--trace FILE)", traced))
        ],
    )
    body = f"""\
A dfu.bin of {size // KIB} KiB flashed onto an instant virtual ESP32-S2 (every poll timeout 0,
nothing sleeps: all of it is host work), {repeats} time(s) each way, in turns. The trace holds
{lines[0]:,} lines, {sizes[0] / KIB / KIB:.1f} MiB.

{table}"""
    rows = [
        Row("tracing: CPU traced / untraced", f"{ratio:.2f}×"),
        Row("tracing: CPU per request", f"{per_request_us:.0f} µs"),
        Row("trace size per MiB flashed", f"{sizes[0] / (size / KIB / KIB) / KIB / KIB:.1f} MiB"),
    ]
    return Section("Tracing a flash", body, rows)
