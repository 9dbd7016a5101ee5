"""`espdfu flash --trace FILE`, `espdfu trace FILE` and `espdfu report`, as users run them."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from espdfu.cli import report
from espdfu.files import dfufile
from espdfu.usb.transport import UsbUnavailable
from tests.helpers.boardworld import image_files
from tests.helpers.command import espdfu
from tests.helpers.traces import assert_flash_sequence, read_lines


@pytest.fixture
def s2_file(tmp_path: Path) -> Path:
    path = tmp_path / "dfu.bin"
    path.write_bytes(dfufile.pack(image_files(), pid=2))
    return path


def payload_size(path: Path) -> int:
    return len(dfufile.load(path).payload)


def test_flash_traces_every_board_into_one_file_and_says_where(
    s2_file: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.jsonl"
    result = espdfu("flash", "--sim", "esp32s2,esp32s2-dfu", "--all", s2_file, "--trace", trace)
    assert result.returncode == 0, result.stderr
    assert f"the trace is in {trace}" in result.stderr
    lines = read_lines(trace)
    assert_flash_sequence(lines, "1-1.1", payload_size(s2_file), detach=True)
    assert_flash_sequence(lines, "1-1.2", payload_size(s2_file), detach=False)


def test_a_trace_that_cannot_be_written_is_refused_before_the_flash(s2_file: Path) -> None:
    result = espdfu("flash", "--sim", "esp32s2", s2_file, "--trace", "/nonexistent/t.jsonl")
    assert result.returncode == 2
    assert "Cannot write the trace to /nonexistent/t.jsonl" in result.stderr


def test_trace_shows_each_request_and_a_summary(s2_file: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    assert espdfu("flash", "--sim", "esp32s2", s2_file, "--trace", trace).returncode == 0
    result = espdfu("trace", trace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(" DETACH " in line and "wIndex=2" in line for line in lines)
    assert any("detach: wValue=1000 will_detach=true" in line for line in lines)
    blocks = -(-payload_size(s2_file) // 64) + 1
    assert lines[-1] == (
        f"1-1.1: {blocks + 1} GETSTATUS, {blocks} DNLOAD, 1 DETACH (none failed). "
        + read_lines(trace)[-1]["message"]
    )
    brief = espdfu("trace", trace, "--summary").stdout.splitlines()
    assert brief == lines[-1:]


def test_trace_refuses_a_file_that_is_not_a_trace(s2_file: Path) -> None:
    result = espdfu("trace", s2_file)
    assert result.returncode == 2
    assert f"Cannot read the trace {s2_file}: it is not text." in result.stderr


def test_report_holds_versions_boards_permission_and_traces_never_the_home_path(
    s2_file: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    state = home / ".local" / "state" / "espdfu"
    trace = home / "my traces" / "t.jsonl"
    trace.parent.mkdir(parents=True)
    env = {"HOME": str(home), "ESPDFU_STATE_DIR": str(state)}
    flashed = espdfu("flash", "--sim", "esp32s2", s2_file, "--trace", trace, env=env)
    assert flashed.returncode == 0, flashed.stderr
    output = tmp_path / "report.md"
    result = espdfu(
        "report", "--sim", "esp32s2,esp32s3-dfu", "--trace", trace, "-o", output, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Wrote {output} (")
    assert "1 trace: ~/my traces/t.jsonl" in result.stdout
    text = output.read_text()
    assert str(home) not in text and str(home) not in result.stdout
    for heading in ("## Versions", "## Boards", "## Permission", "## Traces"):
        assert heading in text
    assert "### 1-1.1: esp32s2, ROM download, ready" in text
    assert '"vid_pid": "303a:0009"' in text  # the descriptors of the board in DFU mode
    assert "### ~/my traces/t.jsonl (" in text
    assert read_lines(trace)[-1]["message"] in text


def test_report_without_libusb_is_still_written_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_libusb(sim: str | None) -> None:
        raise UsbUnavailable("No libusb 1.0 library could be loaded.", "Install libusb 1.0.")

    monkeypatch.setattr(report, "open_usb", no_libusb)
    sections, contents = report.gather(None, [], datetime.datetime.now(datetime.timezone.utc))
    text = "\n".join(sections)
    assert "- USB: No libusb 1.0 library could be loaded. Install libusb 1.0." in text
    assert "Not listed: no USB library (above)." in text
    assert "0 boards with descriptors and state" in contents


def test_report_to_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    result = espdfu("report", "--sim", "esp32s2", "-o", tmp_path / "no" / "r.md")
    assert result.returncode == 2
    assert result.stderr.startswith("espdfu: The report was not written.")


def test_report_includes_the_newest_traces_the_app_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = tmp_path / "state" / "traces"
    traces.mkdir(parents=True)
    for number in range(4):
        (traces / f"2026120{number}-120000-000000-1-1.1.jsonl").write_text(f'{{"n": {number}}}\n')
    monkeypatch.setenv("ESPDFU_STATE_DIR", str(tmp_path / "state"))
    output = tmp_path / "report.md"
    result = espdfu("report", "--sim", "esp32s2", "-o", output)
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    assert [f'{{"n": {n}}}' in text for n in range(4)] == [False, True, True, True]
    assert "3 traces: " in result.stdout


def test_a_long_trace_keeps_its_start_and_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "TRACE_LINES", 3)
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(f"{n}\n" for n in range(10)))
    lines = report._trace(trace)
    body = lines[lines.index("```jsonl") + 1 : lines.index("```")]
    assert body == ["0", "1", "2", "… 4 lines left out …", "7", "8", "9"]
    assert lines[0] == f"### {trace} (10 lines)"


def test_the_home_folder_is_hidden_only_where_it_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    text = "/home/me/t.jsonl, /home/me, /home/meg/x, /home/me.old"
    assert report.home_hidden(text) == "~/t.jsonl, ~, /home/meg/x, /home/me.old"
