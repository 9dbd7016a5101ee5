"""Only what changed against the whole file, through a real USB stack (QEMU guest).

Two ESP32-S2 DevKits (tests/realusb/changes.py's builds: a 256 KiB app, a 24 KiB NVS image, the
bootloader and the partition table) hold the same build. In turns, one gets the next build as
its changes (`espdfu flash NEW --diff-with OLD --verify`), the other the whole of it (`espdfu
flash NEW --verify`); the next turn goes back to the first build, so each turn sends the same
edit. Both are reset through their bridges and their boots read, so each command's time is the
whole job: reset into download mode, DETACH, the download with the ROM's erases, the reset into
the app and the check. The guest runs in software emulation, where the download is some twenty
times slower than on hardware: the share saved is what carries over, more than the seconds.
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

from tests.realusb.changes import NEW as SECOND  # noqa: E402
from tests.realusb.changes import OLD, dfu_bin  # noqa: E402
from tests.realusb.harness import BoardSpec, GuestRun, boot, unavailable  # noqa: E402

TITLE = "Only what changed, real USB (QEMU guest)"
KINDS = ("changes", "whole")


def _scenario(turns: int) -> str:
    lines = ["mkdir -p /tmp/linked && consoles 0 1 >/tmp/linked/config.toml"]
    lines.append("export ESPDFU_CONFIG_DIR=/tmp/linked")
    for turn in range(turns):
        new, old = ("b", "a") if turn % 2 == 0 else ("a", "b")
        lines += [
            f'step changes_{turn} espdfu flash "$INPUTS/{new}.dfu.bin" -p "$(board_path 0)" '
            f'--diff-with "$INPUTS/{old}.dfu.bin" --verify 30 --json',
            f'step whole_{turn} espdfu flash "$INPUTS/{new}.dfu.bin" -p "$(board_path 1)" '
            "--verify 30 --json",
        ]
    return "\n".join(lines)


def _times(run: GuestRun, turns: int) -> dict[str, dict[str, list[float]]]:
    """Per kind: the command's seconds, the download's, the bytes sent."""
    found: dict[str, dict[str, list[float]]] = {
        kind: {"command": [], "download": [], "bytes": []} for kind in KINDS
    }
    for board, kind in enumerate(KINDS):
        downloads = run.boards[board].downloads
        if len(downloads) != turns:
            raise RuntimeError(f"board {board}: {len(downloads)} downloads, not {turns}")
        for turn in range(turns):
            step = run.step(f"{kind}_{turn}")
            if step.rc:
                raise RuntimeError(f"a benchmark flash failed: {step!r}")
            download = downloads[turn]
            found[kind]["command"].append(step.seconds)
            found[kind]["download"].append(download["ended"] - download["started"])
            found[kind]["bytes"].append(sum(file["size"] for file in download["files"]))
    return found


def run(quick: bool) -> Section:
    reason = unavailable()
    if reason is not None:
        return Section(TITLE, f"Not run: the real-USB guest cannot run here ({reason}).")
    turns = 2 if quick else 4
    boards = [BoardSpec(bridge=True, start="app", preload=OLD) for _ in KINDS]
    inputs = {"a.dfu.bin": dfu_bin(OLD), "b.dfu.bin": dfu_bin(SECOND)}
    with tempfile.TemporaryDirectory() as folder:
        guest = boot(_scenario(turns), boards=boards, inputs=inputs, workdir=Path(folder))
    times = _times(guest, turns)
    median = {kind: {k: statistics.median(v) for k, v in times[kind].items()} for kind in KINDS}
    rows = [
        [
            kind,
            f"{median[kind]['bytes'] / 1024:.1f} KB",
            f"{median[kind]['download']:.2f} s",
            f"{median[kind]['command']:.2f} s",
            f"{min(times[kind]['command']):.2f}–{max(times[kind]['command']):.2f} s",
        ]
        for kind in KINDS
    ]
    table = markdown_table(
        ["sent", "bytes written", "download (median)", "command (median)", "command range"], rows
    )
    body = (
        f"{turns} turns of each, interleaved (changes, whole, changes, …), in one guest boot; "
        "each command resets its board into download mode, flashes it, resets it into its app "
        "and reads its boot (--verify). Bytes written are the files the ROM's model wrote; "
        "the download is the gadget's clock from the first block to the last. Idle machine, 2 "
        "cores.\n\n" + table
    )
    ratio = median["changes"]["command"] / median["whole"]["command"]
    download = median["changes"]["download"] / median["whole"]["download"]
    return Section(
        TITLE,
        body,
        [
            Row("real USB: changes ÷ whole, command", f"{ratio:.2f} ×"),
            Row("real USB: changes ÷ whole, download", f"{download:.2f} ×"),
        ],
    )
