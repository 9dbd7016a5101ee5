"""espdfu flash ÷ dfu-util -D through a real USB stack: the side-by-side figure users care about.

In one QEMU guest run (tests/realusb), both tools flash the same 1 MiB dfu.bin to the same
emulated ESP32-S2 from ROM download mode, so each wall time includes the detach dance (DETACH,
re-enumeration, finding the board again), the download and the manifestation. They take turns,
the board replugged in ROM download mode before each flash. Goal: espdfu ≤ 1.0 × dfu-util.

Two boards, both the ROM as ``espdfu.rom`` describes it (each file's erase holds the bus, no
dfuDNBUSY; dfuIDLE straight after the download, so no tool is made to sleep in dfuMANIFEST),
differing in what the ROM does not publish: one reports a bwPollTimeout of 2 ms with every
dfuDNLOAD-IDLE (as ROMs built on Zephyr's DFU class report a constant poll timeout), one 0.
Both tools send the next block at once after dfuDNLOAD-IDLE: DFU 1.1 asks for the poll timeout
only before the next GETSTATUS (the 2 ms board keeps that honest). A third board takes, once,
a dfu.bin with one 2 MiB part, whose erase (15 s) outlasts dfu-util's 5 s request timeout.
Also reported: bytes per second of
the whole command and of the download phase (the gadget's own clock), and the CPU time each
tool used in the guest, where software emulation makes CPU about ten times dearer than on a
real machine (in the guest, a Python host pays for that; on hardware the USB frames dominate).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from run import Row, Section, markdown_table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the harness lives with the tests
    sys.path.insert(0, str(ROOT))

from tests.realusb.harness import MIB, BoardSpec, GuestRun, boot, make_image, unavailable  # noqa: E402

GOAL = 1.0
TOOLS = ("espdfu", "dfu-util")
MODELS = {0: "2 ms", 1: "0 ms"}
"""Board number: the poll timeout it reports with dfuDNLOAD-IDLE."""


LARGE_BOARD = 2


def _scenario(repeats: int) -> str:
    lines = ["STEP_TIMEOUT=400"]
    large = f'"$(board_path {LARGE_BOARD})"'
    lines += [
        f'step large_espdfu espdfu flash "$INPUTS/large.dfu.bin" --path {large}',
        f"gadget replug {LARGE_BOARD}",
        f'step large_dfu-util dfu-util -d 303a:0002 -p {large} -D "$INPUTS/large.dfu.bin"',
    ]
    for repeat in range(repeats):
        for board in MODELS:
            path = f'"$(board_path {board})"'
            lines += [
                f"gadget replug {board}",
                f'step espdfu_{board}_{repeat} espdfu flash "$INPUTS/big.dfu.bin" --path {path}',
                f"gadget replug {board}",
                f"step dfu-util_{board}_{repeat} "
                f'dfu-util -d 303a:0002 -p {path} -D "$INPUTS/big.dfu.bin"',
            ]
    return "\n".join(lines) + "\n"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def _rate(size: int, seconds: list[float]) -> str:
    return f"{size / statistics.median(seconds) / 1024:.1f} KiB/s"


def _large(run: GuestRun) -> str:
    """What each tool made of the 2 MiB part, in a sentence."""
    espdfu, dfu_util = run.step("large_espdfu"), run.step("large_dfu-util")
    said = "LIBUSB_ERROR_TIMEOUT" if "LIBUSB_ERROR_TIMEOUT" in dfu_util.stderr else "an error"
    return (
        f"A dfu.bin with one 2 MiB part (the ROM erases it for 15 s without answering): espdfu "
        f"{'flashed it' if espdfu.rc == 0 else f'FAILED (exit {espdfu.rc})'} in "
        f"{espdfu.seconds:.1f} s; dfu-util "
        + (
            f"exited {dfu_util.rc} with {said} after {dfu_util.seconds:.1f} s."
            if dfu_util.rc
            else f"flashed it in {dfu_util.seconds:.1f} s."
        )
    )


def _section(run: GuestRun, repeats: int, size: int) -> Section:
    rows: list[Row] = []
    table: list[list[str]] = []
    for board, poll in MODELS.items():
        downloads = iter(run.boards[board].downloads)
        walls: dict[str, list[float]] = {tool: [] for tool in TOOLS}
        phases: dict[str, list[float]] = {tool: [] for tool in TOOLS}
        cpus: dict[str, list[float]] = {tool: [] for tool in TOOLS}
        for repeat in range(repeats):
            for tool in TOOLS:  # the scenario's order, which is the board's downloads' order
                step = run.step(f"{tool}_{board}_{repeat}")
                download = next(downloads)
                if step.rc or download["outcome"] != "manifested":
                    raise RuntimeError(f"a benchmark flash failed: {step!r}\n{download}")
                walls[tool].append(step.seconds)
                phases[tool].append(download["ended"] - download["started"])
                cpus[tool].append(step.cpu_s or 0.0)
        for tool in TOOLS:
            table.append(
                [
                    f"{tool}, {poll} poll",
                    _spread(walls[tool]),
                    _rate(size, walls[tool]),
                    _rate(size, phases[tool]),
                    f"{statistics.median(cpus[tool]):.1f}",
                ]
            )
        ratio = statistics.median(walls["espdfu"]) / statistics.median(walls["dfu-util"])
        rows.append(
            Row(
                f"espdfu ÷ dfu-util, wall time, ROM reporting {poll} with dfuDNLOAD-IDLE",
                f"{ratio:.2f}",
                f"≤ {GOAL:.1f}",
                ratio <= GOAL,
            )
        )
    body = "\n\n".join(
        [
            "Both tools flash the same 1 MiB dfu.bin to the same emulated ESP32-S2 (an ESP ROM "
            "model on a Linux USB gadget in a QEMU guest, tests/realusb), from ROM download "
            "mode: the wall time includes the detach dance. The boards are the ROM as "
            "espdfu.rom describes it: each file's erase holds the bus (30 ms per 4 KiB; the "
            "file's 512 KiB parts take 3.8 s each), and the GETSTATUS after the download "
            "answers dfuIDLE (no dfuMANIFEST for either tool to sleep in). One board reports a "
            "bwPollTimeout of 2 ms with each dfuDNLOAD-IDLE, the other 0. Both tools send the "
            "next block at once after dfuDNLOAD-IDLE (DFU 1.1 asks for the poll timeout only "
            "before the next GETSTATUS). The tools take turns on each board (A-B-A-B).",
            f"{repeats} flash(es) of each tool on each board, {size:,} bytes downloaded each; "
            f"one guest run ({run.describe()}).",
            markdown_table(
                ["Tool, board", "Wall s: median (min–max)", "Whole", "Download", "CPU s"],
                table,
            ),
            "Whole: bytes per second of the whole command (detach dance included). Download: "
            "from the first block to the end of manifestation, by the gadget's clock. CPU: "
            "user and system seconds of the command in the guest (software emulation).",
            _large(run),
        ]
    )
    return Section("Real USB: espdfu flash ÷ dfu-util -D (QEMU guest)", body, rows)


def run(quick: bool) -> Section:
    title = "Real USB: espdfu flash ÷ dfu-util -D (QEMU guest)"
    reason = unavailable()
    if reason is not None:
        return Section(title, f"Not run: the real-USB guest cannot run here ({reason}).")
    repeats = 1 if quick else 3
    image = make_image("esp32s2", seed=3, app_size=MIB - 14 * 1024)
    large = make_image("esp32s2", seed=4, app_size=2 * MIB, part_size=4 * MIB)
    boards = [
        BoardSpec(timing={"block_poll_ms": 2}),
        BoardSpec(timing={"block_poll_ms": 0}),
        BoardSpec(),
    ]
    with tempfile.TemporaryDirectory() as folder:
        result = boot(
            _scenario(repeats),
            boards=boards,
            inputs={"big.dfu.bin": image.data, "large.dfu.bin": large.data},
            udev=True,  # dfu-util's libusb needs udevd to find the board after DETACH
            timeout_s=420 + repeats * 420,
            workdir=Path(folder),
        )
        return _section(result, repeats, image.payload_size)
