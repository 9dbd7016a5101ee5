"""A board plugged in, seen by the hot-plug monitor: on the kernel's word (uevents) or by polling,
through a real USB stack (QEMU guest), and what the monitor costs while nothing happens.

In one guest boot (no udevd, as on a bare system: the kernel's uevents need none), the monitor
of espdfu's library (``HotPlug`` on libusb-package's libusb, tests/realusb/plugprobe.py) runs
in turns (A-B-A…): as it runs now, with the uevents as its cue and its poll 2 s apart as the
safety net, and with its 0.5 s poll alone, as before. Each turn measures the
monitor's CPU seconds over 10 idle seconds with one board connected, then a second board is
plugged in five times (the gadget binds it to its port; the guest's USB host enumerates it):
from the bind, on the emulated board's clock, to the monitor's report of it, on the same clock.
The guest runs in software emulation: a USB enumeration there takes longer than on hardware.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from run import Row, Section, markdown_table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the harness lives with the tests
    sys.path.insert(0, str(ROOT))

from tests.realusb.harness import BoardSpec, GuestRun, boot, unavailable  # noqa: E402

TITLE = "Hot-plug: a board plugged in, real USB (QEMU guest)"
PLUGS = 5
IDLE_S = 10
GOAL_S = 0.1
PROBE = ROOT / "tests" / "realusb" / "plugprobe.py"
HOWS = ("uevents", "poll")


def _scenario(turns: int) -> str:
    lines = ["gadget unplug 0"]
    for turn in range(turns):
        for how in HOWS:
            name = f"{how}_{turn}"
            lines += [
                f'start {name} python3 "$INPUTS/plugprobe.py" "$(board_path 0)" {how} '
                f"{PLUGS} {IDLE_S}",
                f'wait_text "$OUT/steps/{name}.out" ready 60',
            ]
            for n in range(1, PLUGS + 1):
                lines += [
                    "gadget replug 0",
                    f'wait_text "$OUT/steps/{name}.out" "seen {n}" 60',
                    "gadget unplug 0",
                ]
            lines.append(f"finish {name}")
    return "\n".join(lines) + "\n"


def _latencies(run: GuestRun, name: str) -> tuple[list[float], list[float], float]:
    """Of one turn: each plug's bind → report, its uevent → report (the kernel had it; the
    rest is espdfu's), and the idle CPU seconds per second."""
    result = json.loads(run.step(name).stdout.splitlines()[-1])
    binds = [event["at"] for event in run.boards[0].events("enumerated")]
    latencies = [seen - max(at for at in binds if at <= seen) for seen in result["seen"]]
    after_kernel = [
        seen - max(at for at in result["heard"] if at <= seen) for seen in result["seen"]
    ]
    return latencies, after_kernel, result["idle_cpu_s"] / result["idle_s"]


def run(quick: bool) -> Section:
    reason = unavailable()
    if reason is not None:
        return Section(TITLE, f"Not run: the real-USB guest cannot run here ({reason}).")
    turns = 1 if quick else 3
    with tempfile.TemporaryDirectory() as folder:
        guest = boot(
            _scenario(turns),
            boards=[BoardSpec(), BoardSpec()],
            inputs={"plugprobe.py": PROBE.read_bytes()},
            timeout_s=300 + turns * 200,
            workdir=Path(folder),
        )
    latencies: dict[str, list[float]] = {how: [] for how in HOWS}
    ours: dict[str, list[float]] = {how: [] for how in HOWS}
    cpu: dict[str, list[float]] = {how: [] for how in HOWS}
    for turn in range(turns):
        for how in HOWS:
            seen, after_kernel, idle = _latencies(guest, f"{how}_{turn}")
            latencies[how] += seen
            ours[how] += after_kernel
            cpu[how].append(idle)
    rows = [
        [
            "uevents, 2 s safety-net poll" if how == "uevents" else "0.5 s poll alone (before)",
            f"{statistics.median(latencies[how]) * 1000:.0f} ms",
            f"{min(latencies[how]) * 1000:.0f}–{max(latencies[how]) * 1000:.0f} ms",
            f"{statistics.median(ours[how]) * 1000:.0f} ms",
            f"{statistics.median(cpu[how]) * 1000:.1f} ms/s",
            str(len(latencies[how])),
        ]
        for how in HOWS
    ]
    headers = ["monitor", "plug → seen (median)", "range", "uevent → seen", "idle CPU", "plugs"]
    table = markdown_table(headers, rows)
    cue = statistics.median(ours["uevents"])
    idle_cue, idle_poll = statistics.median(cpu["uevents"]), statistics.median(cpu["poll"])
    body = (
        f"{turns} turns of each, interleaved, in one guest boot; idle machine, 2 cores. "
        "Plug → seen is from the gadget binding the board to its port to the monitor's "
        "report, both on the guest's clock; uevent → seen is from the kernel's word that the "
        "device is there (its enumeration done: what the emulated bus took before is not "
        "espdfu's) to the report; idle CPU is the monitor's process over "
        f"{IDLE_S} s with a board connected.\n\n" + table
    )
    return Section(
        TITLE,
        body,
        [
            Row(
                "uevent → seen (uevents)",
                f"{cue * 1000:.0f} ms",
                f"≤ {GOAL_S * 1000:.0f} ms",
                cue <= GOAL_S,
            ),
            Row(
                "plug → seen (uevents)", f"{statistics.median(latencies['uevents']) * 1000:.0f} ms"
            ),
            Row(
                "idle CPU, uevents ÷ poll",
                f"{idle_cue / idle_poll:.2f} ×" if idle_poll else "n/a",
                "≤ 1.0 ×",
                idle_cue <= idle_poll,
            ),
        ],
    )
