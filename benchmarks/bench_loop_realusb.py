"""The loop with no hands through a real USB stack (QEMU guest), part by part.

tests/realusb/loop.py's run: an ESP32-S2 DevKit (its USB-UART bridge a CDC-ACM on a USB port of
its own, read by the guest's cdc_acm and pyserial) powers on running its old build, armed in
`espdfu watch`; a new dfu.bin (the app 64 KB, 90 KB in all) arrives, and the board is reset into
download mode through its bridge, DETACHed, flashed, reset into its app, and its boot read and
checked. Times are the guest's clock (the emulated board's events, the scenario's marks). The
guest runs in software emulation, where the download is some twenty times slower than on
hardware; the resets and the re-enumeration (0.5 s, an assumption of the emulated ROM) are what
the user waits for on any machine.
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

from tests.realusb.harness import boot, unavailable  # noqa: E402
from tests.realusb.loop import BOARDS, INPUTS, SCENARIO, parts  # noqa: E402

TITLE = "The loop with no hands, real USB (QEMU guest)"


def run(quick: bool) -> Section:
    reason = unavailable()
    if reason is not None:
        return Section(TITLE, f"Not run: the real-USB guest cannot run here ({reason}).")
    runs = 1 if quick else 3
    timed: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(runs):
            guest = boot(SCENARIO, boards=BOARDS, inputs=INPUTS, workdir=Path(folder))
            if not (guest.folder / "out" / "verified_at").is_file():
                watch = guest.step("watch")
                return Section(TITLE, f"No board was verified: {watch.stdout[-2000:]}")
            timed.append(parts(guest))
    medians = {part: statistics.median(run[part] for run in timed) for part in timed[0]}
    spread = {part: (min(r[part] for r in timed), max(r[part] for r in timed)) for part in medians}
    table = markdown_table(
        ["part", "median", "range", "guest boots"],
        [
            [part, f"{seconds:.2f} s", f"{spread[part][0]:.2f}–{spread[part][1]:.2f} s", str(runs)]
            for part, seconds in medians.items()
        ],
    )
    body = (
        "An ESP32-S2 DevKit running its old build, armed in `espdfu watch` with a second one "
        "(both flashed at once), a new 90 KB dfu.bin: from its arrival to the line that says the "
        "board runs it, through the guest's USB stack (software emulation: the download some "
        "twenty times slower than on hardware), each part on the guest's clock; the last part "
        "includes the scenario's 0.1 s look at the output. Idle machine, 2 cores.\n\n" + table
    )
    return Section(
        TITLE,
        body,
        [Row("real USB: new dfu.bin → verified", f"{medians['whole loop']:.1f} s")],
    )
