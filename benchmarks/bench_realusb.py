"""espdfu flash ÷ dfu-util -D through a real USB stack: the side-by-side figures users care about.

In one QEMU guest run (tests/realusb), both tools flash the same 1 MiB dfu.bin to the same
emulated ESP32-S2 from ROM download mode, so each wall time includes the detach dance (DETACH,
re-enumeration, finding the board again), the download and the manifestation. They take turns,
the board replugged in ROM download mode before each flash. Goals: the whole command ≤ 0.9 ×
dfu-util's and the download phase ≤ 1.0 × (issue 25, "Send only what changed, and every request
as cheap as the platform allows"), CPU per MiB ≤ dfu-util's, start → DETACH sent ≤ dfu-util's +
0.3 s, and 8 boards at once ≤ 1.2 × one board (issue 14).

Two boards, both the ROM as ``espdfu.usb.rom`` describes it (each file's erase holds the bus, no
dfuDNBUSY; dfuIDLE straight after the download, so no tool is made to sleep in dfuMANIFEST),
differing in what the ROM does not publish: one reports a bwPollTimeout of 2 ms with every
dfuDNLOAD-IDLE (as ROMs built on Zephyr's DFU class report a constant poll timeout), one 0.
Both tools send the next block at once after dfuDNLOAD-IDLE: DFU 1.1 asks for the poll timeout
only before the next GETSTATUS (the 2 ms board keeps that honest). A third board takes, once,
a dfu.bin with one 2 MiB part, whose erase (15 s) outlasts dfu-util's 5 s request timeout.
Eight more boards take a 256 KiB dfu.bin, one board alone then all eight at once: `espdfu
flash` with eight --path, and eight dfu-util processes started together (dfu-util flashes one
board per process), so that what the guest's emulated bus costs shows beside what each tool
adds. Times are the gadget's own clock (the guest's uptime) and the step's; CPU is user and
system seconds of the command in the guest, where software emulation makes CPU ten to twenty
times dearer than on this machine (a Python host pays for that; on hardware the USB frames
dominate).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from run import Row, Section, markdown_table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the harness lives with the tests
    sys.path.insert(0, str(ROOT))

from tests.realusb.harness import MIB, BoardSpec, GuestRun, boot, make_image, unavailable  # noqa: E402

WHOLE_GOAL = 0.9
DOWNLOAD_GOAL = 1.0
DETACH_GOAL_S = 0.3
PARALLEL_GOAL = 1.2
TOOLS = ("espdfu", "dfu-util")
MODELS = {0: "2 ms", 1: "0 ms"}
"""Board number: the poll timeout it reports with dfuDNLOAD-IDLE."""
LARGE_BOARD = 2
PARALLEL = range(8)
"""The eight boards flashed at once (a run of their own: the guest's gadget takes eight)."""
DFU_UTIL = "dfu-util -d 303a:0002"


def _scenario(repeats: int) -> str:
    lines = ["STEP_TIMEOUT=400"]
    large = f'"$(board_path {LARGE_BOARD})"'
    lines += [
        f'step large_espdfu espdfu flash "$INPUTS/large.dfu.bin" --path {large}',
        f"gadget replug {LARGE_BOARD}",
        f'step large_dfu-util {DFU_UTIL} -p {large} -D "$INPUTS/large.dfu.bin"',
    ]
    for repeat in range(repeats):
        for board in MODELS:
            path = f'"$(board_path {board})"'
            lines += [
                f"gadget replug {board}",
                f'step espdfu_{board}_{repeat} espdfu flash "$INPUTS/big.dfu.bin" --path {path}',
                f"gadget replug {board}",
                f'step dfu-util_{board}_{repeat} {DFU_UTIL} -p {path} -D "$INPUTS/big.dfu.bin"',
            ]
    return "\n".join(lines) + "\n"


def _parallel_scenario() -> str:
    """One board alone, then eight at once, for each tool in turn."""
    paths = [f'"$(board_path {board})"' for board in PARALLEL]
    replug = "; ".join(f"gadget replug {board}" for board in PARALLEL)
    # dfu-util flashes one board per process: eight processes, the step fails if any does.
    eight = (
        "bash -c 'for path; do "
        f'{DFU_UTIL} -p "$path" -D "$INPUTS/small.dfu.bin" & done; '
        'status=0; for job in $(jobs -p); do wait "$job" || status=1; done; exit $status\' _'
    )
    lines = [
        "STEP_TIMEOUT=400",
        f'step one_espdfu espdfu flash "$INPUTS/small.dfu.bin" --path {paths[0]}',
        replug,
        'step eight_espdfu espdfu flash "$INPUTS/small.dfu.bin" '
        + " ".join(f"--path {path}" for path in paths),
        replug,
        f'step one_dfu-util {DFU_UTIL} -p {paths[0]} -D "$INPUTS/small.dfu.bin"',
        replug,
        f"step eight_dfu-util {eight} {' '.join(paths)}",
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


@dataclass
class _Figures:
    """One tool's flashes of the 1 MiB file on one board."""

    walls: list[float] = field(default_factory=list)
    downloads: list[float] = field(default_factory=list)
    """First block to the end of manifestation, by the gadget's clock."""
    detaches: list[float] = field(default_factory=list)
    """Command start to DETACH received, by the guest's clock."""
    cpus: list[float] = field(default_factory=list)


def _figures(run: GuestRun, repeats: int, board: int) -> dict[str, _Figures]:
    figures = {tool: _Figures() for tool in TOOLS}
    downloads = iter(run.boards[board].downloads)
    detaches = iter(run.boards[board].events("detached"))
    for repeat in range(repeats):
        for tool in TOOLS:  # the scenario's order, which is the board's downloads' order
            step = run.step(f"{tool}_{board}_{repeat}")
            download, detach = next(downloads), next(detaches)
            if step.rc or download["outcome"] != "manifested":
                raise RuntimeError(f"a benchmark flash failed: {step!r}\n{download}")
            figures[tool].walls.append(step.seconds)
            figures[tool].downloads.append(download["ended"] - download["started"])
            figures[tool].detaches.append(detach["at"] - step.start)
            figures[tool].cpus.append(step.cpu_s or 0.0)
    return figures


def _ratio_row(name: str, ours: list[float], theirs: list[float], goal: float) -> Row:
    ratio = statistics.median(ours) / statistics.median(theirs)
    return Row(name, f"{ratio:.2f}", f"≤ {goal:.1f}", ratio <= goal)


def _comparison(run: GuestRun, repeats: int, size: int) -> tuple[list[Row], str]:
    rows: list[Row] = []
    table: list[list[str]] = []
    mib = size / MIB
    for board, poll in MODELS.items():
        figures = _figures(run, repeats, board)
        for tool in TOOLS:
            tool_figures = figures[tool]
            table.append(
                [
                    f"{tool}, {poll} poll",
                    _spread(tool_figures.walls),
                    _rate(size, tool_figures.walls),
                    _rate(size, tool_figures.downloads),
                    f"{statistics.median(tool_figures.detaches):.2f}",
                    f"{statistics.median(tool_figures.cpus) / mib:.1f}",
                ]
            )
        ours, theirs = figures["espdfu"], figures["dfu-util"]
        board_name = f"ROM reporting {poll} with dfuDNLOAD-IDLE"
        rows.append(
            _ratio_row(f"whole command, espdfu ÷ dfu-util, {board_name}", ours.walls,
                       theirs.walls, WHOLE_GOAL)
        )  # fmt: skip
        rows.append(
            _ratio_row(f"download phase, espdfu ÷ dfu-util, {board_name}", ours.downloads,
                       theirs.downloads, DOWNLOAD_GOAL)
        )  # fmt: skip
        cpu_ours, cpu_theirs = (statistics.median(f.cpus) / mib for f in (ours, theirs))
        rows.append(
            Row(
                f"CPU s per MiB in the guest, espdfu (dfu-util), {board_name}",
                f"{cpu_ours:.1f} ({cpu_theirs:.1f})",
                "≤ dfu-util's",
                cpu_ours <= cpu_theirs,
            )
        )
        late = statistics.median(ours.detaches) - statistics.median(theirs.detaches)
        rows.append(
            Row(
                f"start → DETACH, espdfu − dfu-util, {board_name}",
                f"{late:+.2f} s",
                f"≤ +{DETACH_GOAL_S:.1f} s",
                late <= DETACH_GOAL_S,
            )
        )
    headers = ["Tool, board", "Wall s: median (min–max)", "Whole", "Download", "DETACH s",
               "CPU s/MiB"]  # fmt: skip
    return rows, markdown_table(headers, table)


def _parallel(run: GuestRun, size: int) -> tuple[list[Row], str]:
    """One board, then eight at once, for each tool."""
    rows: list[Row] = []
    lines: list[str] = []
    for tool in TOOLS:
        one, eight = run.step(f"one_{tool}"), run.step(f"eight_{tool}")
        if one.rc or eight.rc:
            raise RuntimeError(f"a benchmark flash failed: {one!r}\n{eight!r}")
        ratio = eight.seconds / one.seconds
        lines.append(
            f"{tool}: one board {one.seconds:.1f} s ({one.cpu_s or 0:.1f} s CPU), eight at once "
            f"{eight.seconds:.1f} s ({eight.cpu_s or 0:.1f} s CPU, "
            f"{(eight.cpu_s or 0) / (8 * size / MIB):.1f} s per MiB): {ratio:.2f} ×."
        )
        rows.append(
            Row(
                f"8 boards at once ÷ 1 board, {tool}"
                + (" (8 processes)" if tool != "espdfu" else ""),
                f"{ratio:.2f}",
                f"≤ {PARALLEL_GOAL:.1f}" if tool == "espdfu" else "",
                ratio <= PARALLEL_GOAL if tool == "espdfu" else None,
            )
        )
    return rows, " ".join(lines)


def _section(run: GuestRun, parallel_run: GuestRun, repeats: int, size: int, small: int) -> Section:
    rows, table = _comparison(run, repeats, size)
    parallel_rows, parallel = _parallel(parallel_run, small)
    body = "\n\n".join(
        [
            "Both tools flash the same 1 MiB dfu.bin to the same emulated ESP32-S2 (an ESP ROM "
            "model on a Linux USB gadget in a QEMU guest, tests/realusb), from ROM download "
            "mode: the wall time includes the detach dance. The boards are the ROM as "
            "espdfu.usb.rom describes it: each file's erase holds the bus (30 ms per 4 KiB; the "
            "file's 512 KiB parts take 3.8 s each), and the GETSTATUS after the download "
            "answers dfuIDLE (no dfuMANIFEST for either tool to sleep in). One board reports a "
            "bwPollTimeout of 2 ms with each dfuDNLOAD-IDLE, the other 0. Both tools send the "
            "next block at once after dfuDNLOAD-IDLE (DFU 1.1 asks for the poll timeout only "
            "before the next GETSTATUS). The tools take turns on each board (A-B-A-B).",
            f"{repeats} flash(es) of each tool on each board, {size:,} bytes downloaded each; "
            f"one guest run ({run.describe()}); run on an otherwise idle machine.",
            table,
            "Whole: bytes per second of the whole command (detach dance included). Download: "
            "from the first block to the end of manifestation, by the gadget's clock. DETACH: "
            "seconds from the command's start to the board receiving DETACH. CPU: user and "
            "system seconds of the command in the guest (software emulation) per MiB.",
            f"Eight boards, a {small:,}-byte download each, flashed one alone and then all "
            f"eight at once, each tool in turn, in a guest run of their own "
            f"({parallel_run.describe()}): {parallel} The guest has two CPUs, which also "
            "run the eight emulated boards (one Python process): what eight dfu-util processes "
            "lose is what the emulation costs.",
            _large(run),
        ]
    )
    return Section(TITLE, body, rows + parallel_rows)


TITLE = "Real USB: espdfu flash ÷ dfu-util -D (QEMU guest)"


def run(quick: bool) -> Section:
    reason = unavailable()
    if reason is not None:
        return Section(TITLE, f"Not run: the real-USB guest cannot run here ({reason}).")
    repeats = 1 if quick else 3
    image = make_image("esp32s2", seed=3, app_size=MIB - 14 * 1024)
    small = make_image("esp32s2", seed=5, app_size=256 * 1024)
    large = make_image("esp32s2", seed=4, app_size=2 * MIB, part_size=4 * MIB)
    boards = [
        BoardSpec(timing={"block_poll_ms": 2}),
        BoardSpec(timing={"block_poll_ms": 0}),
        BoardSpec(),
    ]
    inputs = {"big.dfu.bin": image.data, "large.dfu.bin": large.data}
    with tempfile.TemporaryDirectory() as folder:
        # udevd: dfu-util's libusb needs it to find the board after DETACH
        comparison = boot(
            _scenario(repeats),
            boards=boards,
            inputs=inputs,
            udev=True,
            timeout_s=420 + repeats * 420,
            workdir=Path(folder),
        )
        parallel = boot(
            _parallel_scenario(),
            boards=[BoardSpec() for _ in PARALLEL],
            inputs={"small.dfu.bin": small.data},
            udev=True,
            timeout_s=600,
            workdir=Path(folder),
        )
        return _section(comparison, parallel, repeats, image.payload_size, small.payload_size)
