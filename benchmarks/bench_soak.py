"""The workbench under load: auto-flash soak and hot-plug storm, as counts with goals.

Soak: 16 virtual boards armed for auto-flash, 25 rebuilds (a new dfu.bin renamed into a real
build folder each time, watched by watchdog) 10–80 ms apart, faster than a flash ends (about
0.1 s of device time each). Latest wins: a board being flashed keeps only the newest artifact
for afterwards. Counted from the events a front end gets, and on the boards themselves (which
flash each holds, downloads done, and how many host threads talked to a board at one time).

Storm: boards of every kind plugged and unplugged every 1–5 ms at ten other ports while four
boards are flashed with one new dfu.bin after another (3 in a quick run, 10 in a full one).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from run import Row, Section

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the scenarios live with the tests
    sys.path.insert(0, str(ROOT))

from tests.helpers.soak import SoakReport, StormReport, soak, storm  # noqa: E402

BOARDS, ROUNDS = 16, 25
STORM_BOARDS = 4


def run(quick: bool) -> Section:
    repeats, artifacts = (1, 3) if quick else (3, 10)
    soaks: list[SoakReport] = []
    storms: list[StormReport] = []
    for number in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            soaks.append(soak(Path(folder), BOARDS, ROUNDS, seed=number))
        with tempfile.TemporaryDirectory() as folder:
            storms.append(storm(Path(folder), STORM_BOARDS, artifacts=artifacts, seed=number))
    return Section("Soak: auto-flash under rebuilds, hot-plug storms", _body(soaks, storms),
                   _soak_rows(soaks) + _storm_rows(storms))  # fmt: skip


def _soak_rows(reports: list[SoakReport]) -> list[Row]:
    def total(name: str) -> int:
        return sum(int(getattr(report, name)) for report in reports)

    runs = len(reports)
    boards = runs * BOARDS
    ok, started, downloads = total("ok"), total("started"), total("downloads")
    most = max(report.most_at_once for report in reports)
    trouble = sum(len(report.trouble) + len(report.threads_left) for report in reports)
    return [
        Row("soak: boards × rebuilds", f"{BOARDS} × {ROUNDS}" + (f" × {runs} runs" * (runs > 1))),
        Row("soak: new dfu.bin reported", str(total("artifacts"))),
        Row("soak: flashes started", str(started)),
        Row("soak: superseded while queued (artifact, board)", str(total("skipped"))),
        Row("soak: flashes finished ok", str(ok), "= started", ok == started),
        _none("soak: flashes failed", total("failed")),
        _none("soak: results lost", total("lost")),
        _none("soak: results duplicated", total("duplicate")),
        Row("soak: downloads the boards completed", str(downloads), "= ok", downloads == ok),
        Row("soak: most flashes at once on one board", str(most), "1", most == 1),
        Row(
            "soak: boards holding the last dfu.bin",
            f"{total('holding_last')}/{boards}",
            "all",
            total("holding_last") == boards,
        ),
        _none("soak: stale board views at the end", total("stale_views")),
        _none("soak: events after stop()", total("events_after_stop")),
        _none("soak: exceptions, errors logged, threads left", trouble),
    ]


def _storm_rows(reports: list[StormReport]) -> list[Row]:
    def total(name: str) -> int:
        return sum(int(getattr(report, name)) for report in reports)

    wanted = sum(report.flashed_boards * report.artifacts for report in reports)
    converged = sum(report.converged and not report.stale_views for report in reports)
    trouble = sum(len(report.trouble) + len(report.threads_left) for report in reports)
    return [
        Row("storm: plugs / unplugs", f"{total('plugs')} / {total('unplugs')}"),
        Row("storm: removals the workbench reported", str(total("removals_seen"))),
        Row("storm: flashes ok", f"{total('ok')}/{wanted}", "all", total("ok") == wanted),
        Row(
            "storm: downloads the boards completed",
            str(total("downloads")),
            f"{wanted}",
            total("downloads") == wanted,
        ),
        Row(
            "storm: board list matches the bus at the end",
            f"{converged}/{len(reports)}",
            "all runs",
            converged == len(reports),
        ),
        _none("storm: events after stop()", total("events_after_stop")),
        _none("storm: exceptions, errors logged, threads left", trouble),
    ]


def _none(name: str, count: int) -> Row:
    return Row(name, str(count), "0", count == 0)


def _body(soaks: list[SoakReport], storms: list[StormReport]) -> str:
    soak_s = sum(report.seconds for report in soaks) / len(soaks)
    storm_s = sum(report.seconds for report in storms) / len(storms)
    problems = [line for report in soaks for line in report.trouble]
    problems += [line for report in storms for line in report.trouble]
    text = (
        f"Soak: {BOARDS} armed boards (ROM, DFU and app kinds), {ROUNDS} rebuilds 10–80 ms "
        f"apart through the real Workbench and watchdog watcher; {soak_s:.1f} s a run. "
        f"Storm: {STORM_BOARDS} boards flashed {storms[0].artifacts} times while ten others of "
        f"every kind came and went every 1–5 ms under a 20 ms monitor; {storm_s:.1f} s a run. "
        f"Runs: {len(soaks)}."
    )
    if problems:
        text += "\n\nTrouble noted: " + "; ".join(problems[:5])
    return text
