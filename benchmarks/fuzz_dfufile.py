"""Fuzz the dfu.bin reader: only its format error may ever come out, in bounded memory.

    python benchmarks/fuzz_dfufile.py [--inputs N] [--seconds S] [--seed N]

Inputs are valid dfu.bins mutated the ways files really break or are forged (bit flips,
truncations, splices of two files, inserted and deleted bytes, absurd sizes written into the
cpio headers and flash_params.dat), their CRC repaired most of the time so that the archive
parser behind it is reached, plus plain random bytes. The loop is guided by outcomes: an input
whose outcome was never seen before (an error sentence or a list of problems, numbers left out)
joins the corpus that later inputs are mutated from, so the search walks into new paths of the
reader without a coverage tool. Every input is read both strictly and not; the peak memory of
each read is measured with tracemalloc.

It prints how many inputs were tried, the distinct exceptions (the format error only, or the
run failed), the distinct outcomes, the peak memory and the time; the exit status is 1 when any
other exception came out.
"""

from __future__ import annotations

import argparse
import random
import re
import struct
import sys
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":  # run as a script: espdfu from the working tree's core/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from espdfu.errors import DfuFormatError
from espdfu.files import dfufile

MB = 1024 * 1024
CORPUS_LIMIT = 2_000
FAILURES_KEPT = 5
_DIGITS = re.compile(rb"\d+|0x[0-9a-f]+")
_HEADER_FIELDS = (6, 11)  # file size and name size, of a cpio header's 13 fields
_INTERESTING = (0, 1, 3, 4, 109, 110, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFF0, 0xFFFF_FFFF)


@dataclass
class FuzzReport:
    """What a fuzz run tried and saw."""

    inputs: int = 0
    seconds: float = 0.0
    exceptions: Counter[str] = field(default_factory=Counter)
    """Exception type name → how many reads raised it (DfuFormatError is the accepted one)."""
    outcomes: int = 0
    """Distinct outcomes: error sentences and valid or invalid images, numbers left out."""
    accepted: int = 0
    """Inputs read as an image (valid or with problems listed) by the non-strict reader."""
    corpus: int = 0
    peak_bytes: int = 0
    """The most memory one read held at once."""
    largest_input: int = 0
    failures: list[tuple[str, bytes]] = field(default_factory=list)
    """The first few inputs that raised anything else: (the exception, the input)."""

    @property
    def unexpected(self) -> int:
        return sum(n for name, n in self.exceptions.items() if name != DfuFormatError.__name__)


def seeds() -> list[bytes]:
    """Valid files of every layout the reader knows: flash params or not, parts, many entries."""
    rng = random.Random(0xD5)
    blob = rng.randbytes
    File = dfufile.FlashFile
    return [
        dfufile.pack(
            [File(0x1000, "boot.bin", blob(300)), File(0x10000, "app.bin", blob(900))], pid=2
        ),
        dfufile.pack([File(0x10000, "app.bin", blob(5000))], pid=9, flash_size=None),
        dfufile.pack([File(0x10000, "app.bin", blob(9000))], pid=2, part_size=4096),
        dfufile.pack([File(0x1000 * n, f"f{n}.bin", blob(40)) for n in range(12)], pid=0xFFFF),
        dfufile.pack([], pid=2),
        dfufile.pack(
            [File(0x1000 * n, f"p{n}.bin", blob(512)) for n in range(200)], pid=2, part_size=128
        ),
    ]


def fuzz(
    inputs: int, *, seconds: float | None = None, seed: int = 0, progress: bool = False
) -> FuzzReport:
    """Try up to ``inputs`` inputs (or until ``seconds`` have passed) and report."""
    rng = random.Random(seed)
    corpus = seeds()
    seen: set[int] = set()  # hashes of outcomes: a long run keeps millions
    report = FuzzReport()
    started = time.perf_counter()
    tracemalloc.start()
    try:
        while report.inputs < inputs:
            if seconds is not None and time.perf_counter() - started > seconds:
                break
            data = _next_input(rng, corpus)
            outcome = hash(_try(data, report))
            if outcome not in seen:
                seen.add(outcome)
                if len(corpus) < CORPUS_LIMIT:
                    corpus.append(data)
            if progress and report.inputs % 10_000 == 0:
                print(f"  {report.inputs:,} inputs, {len(seen):,} outcomes", file=sys.stderr)
    finally:
        tracemalloc.stop()
    report.seconds = time.perf_counter() - started
    report.outcomes = len(seen)
    report.corpus = len(corpus)
    return report


def _try(data: bytes, report: FuzzReport) -> bytes:
    """Read ``data`` both ways, counting what came out; return its outcome (numbers left out)."""
    report.inputs += 1
    report.largest_input = max(report.largest_input, len(data))
    outcome = []
    for strict in (True, False):
        tracemalloc.reset_peak()
        held_before = tracemalloc.get_traced_memory()[0]  # the corpus and such, not this read
        try:
            image = dfufile.parse(data, strict=strict)
        except DfuFormatError as error:
            report.exceptions[DfuFormatError.__name__] += 1
            outcome.append(error.message)
        except Exception as error:  # what the fuzzer is here to find
            report.exceptions[type(error).__name__] += 1
            if len(report.failures) < FAILURES_KEPT:
                report.failures.append((repr(error), data))
            outcome.append(type(error).__name__)
        else:
            report.accepted += not strict
            outcome.append(" ".join(image.problems[:1] or ("valid",)))
        peak = tracemalloc.get_traced_memory()[1] - held_before
        report.peak_bytes = max(report.peak_bytes, peak)
    return _DIGITS.sub(b"#", "|".join(outcome).encode())


# --- mutations --------------------------------------------------------------------------------


def _next_input(rng: random.Random, corpus: list[bytes]) -> bytes:
    if rng.random() < 0.03:
        return rng.randbytes(rng.randrange(0, 4096))
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        rng.choice(_MUTATIONS)(rng, data, corpus)
    if len(data) >= 4 and rng.random() < 0.8:  # past the CRC, to the archive parser
        data[-4:] = struct.pack("<I", 0xFFFFFFFF ^ zlib.crc32(data[:-4]))
    return bytes(data)


def _flip_bit(rng: random.Random, data: bytearray, _corpus: list[bytes]) -> None:
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _set_byte(rng: random.Random, data: bytearray, _corpus: list[bytes]) -> None:
    if data:
        data[rng.randrange(len(data))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))


def _truncate(rng: random.Random, data: bytearray, _corpus: list[bytes]) -> None:
    del data[rng.randrange(len(data) + 1) :]


def _insert(rng: random.Random, data: bytearray, _corpus: list[bytes]) -> None:
    at = rng.randrange(len(data) + 1)
    data[at:at] = rng.randbytes(rng.choice((1, 2, 4, 110, rng.randrange(1, 300))))


def _delete(rng: random.Random, data: bytearray, _corpus: list[bytes]) -> None:
    if data:
        at = rng.randrange(len(data))
        del data[at : at + rng.choice((1, 2, 4, 110, rng.randrange(1, 300)))]


def _splice(rng: random.Random, data: bytearray, corpus: list[bytes]) -> None:
    """The head of this file and the tail of another, as an interrupted copy over it leaves."""
    other = rng.choice(corpus)
    data[rng.randrange(len(data) + 1) :] = other[rng.randrange(len(other) + 1) :]


def _header_size(rng: random.Random, data: bytearray, _corpus: list[bytes]) -> None:
    """Write an absurd or random number into a size field of one cpio header."""
    headers = [found.start() for found in re.finditer(dfufile.CPIO_MAGIC, data)]
    if headers:
        number = rng.choice(_HEADER_FIELDS) if rng.random() < 0.8 else rng.randrange(13)
        at = rng.choice(headers) + 6 + 8 * number
        value = rng.choice(_INTERESTING) if rng.random() < 0.5 else rng.getrandbits(32)
        data[at : at + 8] = b"%08x" % value


def _flash_params(rng: random.Random, data: bytearray, _corpus: list[bytes]) -> None:
    """Random values in flash_params.dat (its md5 is not checked, so they are read)."""
    name = dfufile.FLASH_PARAMS_NAME.encode() + b"\0"
    at = data.rfind(name)
    if at >= 0:
        start = at + len(name)
        start += -start % 4
        values = [rng.choice(_INTERESTING) for _ in range(8)]
        data[start : start + 32] = struct.pack("<8I", *values)


_MUTATIONS: Sequence[Callable[[random.Random, bytearray, list[bytes]], None]] = (
    _flip_bit,
    _set_byte,
    _truncate,
    _insert,
    _delete,
    _splice,
    _header_size,
    _header_size,
    _flash_params,
)


# --- the script -------------------------------------------------------------------------------


def summary(report: FuzzReport) -> str:
    exceptions = ", ".join(f"{name} ×{n:,}" for name, n in report.exceptions.most_common())
    lines = [
        f"inputs tried        {report.inputs:,} (each read strictly and not)",
        f"time                {report.seconds:.1f} s ({report.inputs / report.seconds:,.0f}/s)",
        f"exceptions (reads)  {exceptions}",
        f"distinct outcomes   {report.outcomes:,} (corpus {report.corpus:,} files)",
        f"read as an image    {report.accepted:,} (valid or with its problems listed)",
        f"peak memory         {report.peak_bytes / MB:.2f} MB for inputs up to "
        f"{report.largest_input:,} bytes",
    ]
    lines += [f"FAILED: {error} on {data[:64].hex()}..." for error, data in report.failures]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="how many inputs at most")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random choices")
    args = parser.parse_args(argv)
    report = fuzz(args.inputs, seconds=args.seconds, seed=args.seed, progress=True)
    print(summary(report))
    return 1 if report.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
