"""The dfu.bin reader under fuzzing: a bounded run of fuzz_dfufile.py, with its figures.

The goals are that no exception but the format error ever comes out, and that no read holds
more than ten times its input plus 4 MB (a header declaring 4 GB must not allocate them).
"""

from __future__ import annotations

from fuzz_dfufile import MB, fuzz
from run import Row, Section

INPUTS = 200_000
QUICK_INPUTS = 20_000
SEED = 6


def run(quick: bool) -> Section:
    report = fuzz(QUICK_INPUTS if quick else INPUTS, seed=SEED)
    memory_goal = 10 * report.largest_input + 4 * MB
    exceptions = ", ".join(f"{name} ×{n:,}" for name, n in report.exceptions.most_common())
    body = (
        f"{report.inputs:,} inputs (seed {SEED}): valid dfu.bins mutated by bit flips, "
        "truncations, splices, inserted and deleted bytes and absurd sizes in the cpio headers "
        "and flash_params.dat, mostly with a repaired CRC, plus random bytes; each read "
        f"strictly and not. Exceptions per read: {exceptions}. "
        f"Run longer with `python benchmarks/fuzz_dfufile.py --seconds 600`."
    )
    rows = [
        Row("inputs tried", f"{report.inputs:,}"),
        Row("inputs per second", f"{report.inputs / report.seconds:,.0f}"),
        Row(
            "exceptions other than DfuFormatError",
            f"{report.unexpected:,}",
            "0",
            not report.unexpected,
        ),
        Row("distinct outcomes", f"{report.outcomes:,}"),
        Row("read as an image (non-strict)", f"{report.accepted:,}"),
        Row(
            f"peak memory of one read (inputs up to {report.largest_input:,} bytes)",
            f"{report.peak_bytes / MB:.2f} MB",
            f"≤ {memory_goal / MB:.1f} MB",
            report.peak_bytes <= memory_goal,
        ),
    ]
    return Section("dfu.bin reader fuzzing", body, rows)
