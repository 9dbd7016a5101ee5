"""The public API (``import espdfu``) and its page, docs/api.md, whose examples are run here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import espdfu
from espdfu.files import dfufile
from espdfu.flashing import flasher
from espdfu.sim import SimBackend
from tests.helpers.boardworld import image_files

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "api.md"
BOARDS = "esp32s2*3,esp32s3"
S2_PATHS = ("1-1.1", "1-1.2", "1-1.3")


def blocks(language: str) -> list[str]:
    """The page's fenced code blocks in ``language``, in order."""
    fence = re.compile(rf"^```{language}\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
    return fence.findall(PAGE.read_text(encoding="utf-8"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with build/dfu.bin for an ESP32-S2, as the examples expect."""
    (tmp_path / "build").mkdir()
    dfu = dfufile.pack(image_files(), pid=0x0002)
    dfufile.save(tmp_path / "build" / "dfu.bin", dfu)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_public_name_is_there_and_typed() -> None:
    for name in espdfu.__all__:
        assert getattr(espdfu, name) is not None, name
    assert set(espdfu.__all__) <= set(dir(espdfu))
    assert espdfu.flash is flasher.flash  # the same objects, not copies
    assert (Path(espdfu.__file__).parent / "py.typed").is_file()
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = espdfu.nonsense  # type: ignore[attr-defined]


def test_importing_espdfu_loads_neither_pyusb_nor_the_flasher() -> None:
    """The CLI imports the package for its version: that must stay cheap."""
    probe = (
        "import sys, espdfu; print([m for m in sys.modules if m.startswith(('usb', 'espdfu.'))])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_examples_run_in_order_on_virtual_boards(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESPDFU_SIM", BOARDS)
    monkeypatch.setenv("ESPDFU_SIM_TIME", "0")
    examples = blocks("python")
    assert len(examples) >= 3
    namespace: dict[str, object] = {"__name__": "__main__"}
    for code in examples:
        exec(compile(code, str(PAGE), "exec"), namespace)
    out = capsys.readouterr().out
    usb = namespace["usb"]
    assert isinstance(usb, espdfu.Usb) and isinstance(usb.backend, SimBackend)
    # The first example flashed the three S2 boards, the second the first of them again.
    completed = {path: board.downloads_completed for path, board in usb.backend.bus.boards.items()}
    assert completed == {"1-1.1": 2, "1-1.2": 1, "1-1.3": 1, "1-1.4": 0}
    assert "skipping 1-1.4 (esp32s3, ROM download)" in out
    assert "3 of 3 boards flashed" in out
    assert "1-1.1: all " in out  # the progress callback
    assert "error: no-such.bin" in out  # the last example's error, in words


def test_the_shell_session_prints_what_the_page_shows(project: Path) -> None:
    """The sh block, with the first example saved as flash_all.py: the output block's lines."""
    (project / "flash_all.py").write_text(blocks("python")[0], encoding="utf-8")
    (session,) = blocks("sh")
    (shown,) = blocks("text")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", session],
        cwd=project, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for expected in shown.splitlines():
        if expected == "...":
            continue
        pattern = re.escape(expected)
        if " Flashed " in expected:  # its size, time and rate are this run's
            pattern = re.sub(r"\d+(?:\\\.\d+)?", r"[\\d.]+", pattern)
        assert any(re.fullmatch(pattern, line) for line in lines), (expected, lines)
    assert len([line for line in lines if " Flashed " in line]) == 3
