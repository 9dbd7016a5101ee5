"""The distribution as users get it: a wheel built from a clean copy of the sources, offline.

What ``pipx install espdfu-tui`` puts on a machine is this wheel, so it must hold both
packages with their data files (the app's stylesheet, the py.typed markers), nothing of the
repository besides (tests, benchmarks, docs), the right metadata, and commands that run.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import espdfu
from tests.conftest import missing

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "core", "tui")
"""What a build reads: a copy of it is built, so that nothing is written into the checkout."""
PACKAGES = {"espdfu": ROOT / "core" / "espdfu", "espdfu_tui": ROOT / "tui" / "espdfu_tui"}
SETUPTOOLS_NEEDED = (77,)  # the build backend pyproject.toml asks for


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    version = importlib.metadata.version("setuptools")
    if tuple(int(part) for part in version.split(".")[:1]) < SETUPTOOLS_NEEDED:
        missing(f"setuptools {version} cannot build the wheel offline (the dev extra has >=77)")
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(origin, source / name, ignore=ignore)
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--quiet", "--wheel-dir", str(out), str(source)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("*.whl")
    return found


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (path,) = (p for p in archive.namelist() if p.endswith(f".dist-info/{name}"))
        return archive.read(path).decode()


def test_the_wheel_is_named_for_any_python_3(wheel: Path) -> None:
    assert wheel.name == f"espdfu_tui-{espdfu.__version__}-py3-none-any.whl"


def test_every_source_file_and_data_file_is_in_it(names: set[str]) -> None:
    for package, folder in PACKAGES.items():
        sources = {
            f"{package}/{path.relative_to(folder).as_posix()}"
            for path in folder.rglob("*")
            if path.is_file() and path.suffix in (".py", ".tcss", ".typed")
            and "__pycache__" not in path.parts
        }  # fmt: skip
        packed = {name for name in names if name.startswith(f"{package}/")}
        assert sources == packed, package
    assert {"espdfu/py.typed", "espdfu_tui/py.typed", "espdfu_tui/app.tcss"} <= names


def test_nothing_else_of_the_repository_is_in_it(names: set[str]) -> None:
    tops = {name.split("/")[0] for name in names}
    assert tops == {"espdfu", "espdfu_tui", f"espdfu_tui-{espdfu.__version__}.dist-info"}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_its_metadata(wheel: Path) -> None:
    meta: Message = email.parser.Parser().parsestr(dist_info(wheel, "METADATA"))
    assert meta["Name"] == "espdfu-tui"
    assert meta["Version"] == espdfu.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.10"
    assert "Flash ESP32-S2/S3 boards" in meta["Summary"]
    assert meta.get_payload(), "the README is the long description"
    required = {
        req.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip()
        for req in meta.get_all("Requires-Dist") or []
        if "extra ==" not in req
    }
    assert {"textual", "pyusb", "watchdog", "libusb-package", "platformdirs", "tomli-w"} <= required
    assert "LICENSE" in {path.rsplit("/", 1)[-1] for path in meta.get_all("License-File") or []}


def test_its_two_commands(wheel: Path) -> None:
    entry_points = dist_info(wheel, "entry_points.txt")
    assert "[console_scripts]" in entry_points
    assert "espdfu = espdfu.cli:main" in entry_points
    assert "espdfu-tui = espdfu_tui.__main__:main" in entry_points


def run_from_wheel(wheel: Path, tmp_path: Path, *args: str) -> str:
    """Run Python with the wheel's own files first on its path; the output."""
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    env.pop("ESPDFU_SIM", None)
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_commands_run_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    where = run_from_wheel(
        wheel, tmp_path, "-c", "import espdfu, espdfu_tui; print(espdfu.__file__)"
    )
    assert where.startswith(str(tmp_path / "unpacked")), "the wheel's espdfu, not the checkout's"
    version = f"espdfu {espdfu.__version__}"
    assert run_from_wheel(wheel, tmp_path, "-m", "espdfu", "--version").strip() == version
    call = "import sys; from {} import main; sys.exit(main(sys.argv[1:]))"
    assert "1-1.1" in run_from_wheel(
        wheel, tmp_path, "-c", call.format("espdfu.cli"), "list", "--sim", "esp32s2"
    )
    usage = run_from_wheel(wheel, tmp_path, "-c", call.format("espdfu_tui.__main__"), "--help")
    assert usage.startswith("usage: espdfu-tui")
