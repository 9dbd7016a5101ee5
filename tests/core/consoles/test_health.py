"""The board's state as a person reads it, one class of real output at a time (the lines are
the real ones of tests/core/consoles/logs, shortened; each test names its log)."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from espdfu.consoles.health import SILENT_S, STABLE_S, Health, RunState
from espdfu.consoles.lines import Splitter, parse
from espdfu.consoles.resets import ResetKind

S3_RESET = (
    "ESP-ROM:esp32s3-20210327",
    "Build:Mar 27 2021",
    "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)",
)
S3_LOAD = ("SPIWP:0xee", "mode:DIO, clock div:1", "load:0x3fce3808,len:0x44c", "entry 0x403c98d0")
PANIC = (
    "Guru Meditation Error: Core  1 panic'ed (StoreProhibited). Exception was unhandled.",
    "PC      : 0x40380f86  PS      : 0x00050033  A0      : 0x40380e87  A1      : 0x3fcce7b0",
    "Backtrace: 0x40380f83:0x3fcce7b0 0x40380e84:0x3fcce7c0 |<-CORRUPTED",
    "ELF file SHA256: e65ebcbcd",
    "Rebooting...",
)


def feed(health: Health, lines: Iterable[str], at: float) -> Health:
    for text in lines:
        health.see(parse(text, at))
    return health


def test_a_reset_on_an_s3_is_one_reset_and_two_are_no_loop() -> None:
    """s3-single-reset-running-arduino: ESP-ROM and rst: of one reset counted once (it was
    counted twice, and two RESET presses read "rebooting in a loop")."""
    health = Health()
    for at in (0.0, 4.0):
        feed(health, S3_RESET + S3_LOAD, at)
    assert [reset.kind for reset in health.resets] == [ResetKind.POWER_ON] * 2
    assert health.state is RunState.BOOTING
    wled = parse("---WLED 0.15.0-b7 2410270 INIT---", 5.0)
    assert health.see(wled) is RunState.RUNNING  # an app without ESP-IDF's markers runs too


def test_a_panic_that_reboots_stays_told_until_the_user_has_looked() -> None:
    """s3-panic-reboot-arduino-radio: the running radio panics, reboots, runs again."""
    health = feed(Health(), ['12:02:45 webSrv: ...  GetFolder "/"'], 0.0)
    assert feed(health, PANIC[:1], 100.0).state is RunState.PANICKED
    assert health.reading().words == "panicked: StoreProhibited"
    feed(health, PANIC[1:], 100.0)
    feed(health, (*S3_RESET[:2], "rst:0xc (RTC_SW_CPU_RST),boot:0x3a (SPI_FAST_FLASH_BOOT)"), 101)
    feed(health, (*S3_LOAD, "", "ESP32 Chip: ESP32-S3"), 102.0)
    feed(health, ["12:03:20 StreamTitle: A-ha - Stay on these Roads"], 139.0)
    assert health.resets[-1].kind is ResetKind.CPU
    reading = health.reading(140.0)
    assert reading.state is RunState.RUNNING
    assert reading.words == "running · panicked 40 s ago (StoreProhibited)"
    assert health.panic[-1].backtrace == (0x40380F83, 0x40380E84)
    health.seen()
    assert health.reading(140.0).words == "running"


def test_a_panic_on_a_usb_console_is_kept_when_the_console_comes_back() -> None:
    """An app's own USB console goes with the reset and comes back with the app: no ROM line."""
    health = feed(Health(), ["I (5000) app: tick", *PANIC], 60.0)
    health.reopened(62.0)
    assert feed(health, ["I (300) app: hello again"], 62.5).state is RunState.RUNNING
    assert health.reading(63.0).words == "running · panicked 3 s ago (StoreProhibited)"


def test_an_assert_at_every_boot_is_crashing_at_boot() -> None:
    """s3-assert-flash-size-loop: it read "booting" (one boot) or "rebooting in a loop"."""
    health = Health()
    crash = (
        "E (113) spi_flash: Detected size(8192k) smaller than the size in the binary image"
        " header(16384k). Probe failed.",
        "assert failed: __esp_system_init_fn_init_flash startup_funcs.c:95 (flash_ret == ESP_OK)",
        "Backtrace: 0x403764f2:0x3fceb120",
        "Rebooting...",
    )
    rst = "rst:0xc (RTC_SW_CPU_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)"
    feed(health, (*S3_RESET[:2], rst, *S3_LOAD, *crash[:2]), 0.0)
    assert health.reading().words == "crashing at boot: assert failed in startup_funcs.c:95"
    feed(health, (*crash[2:], *S3_RESET[:2], rst, *S3_LOAD), 0.5)
    assert health.reading(600.0).words == (
        "crashing at boot: assert failed in startup_funcs.c:95"
    )  # not silent: it cannot get past its start


def test_watchdog_resets_before_the_app_runs_are_crashing_at_boot() -> None:
    """s3-tg1wdt-reset-loop-arduino."""
    health = feed(Health(), S3_RESET + S3_LOAD, 0.0)
    for at in (0.3, 0.6):
        feed(health, (S3_RESET[0], "rst:0x8 (TG1WDT_SYS_RST),boot:0x2a (SPI_FAST_FLASH_BOOT)"), at)
    assert health.reading().words == (
        "crashing at boot: watchdog reset, rst:0x8 (TG1WDT_SYS_RST), 2 boots"
    )


def test_a_refusal_is_cannot_boot_and_stays_so_but_an_ota_slot_refused_is_not() -> None:
    """s3-factory-not-bootable, s3-ota-slot-refused-fallback, s3-rom-invalid-header-joined."""
    refused = feed(
        Health(),
        [
            "E (129) esp_image: invalid segment length 0x403797f8",
            "E (134) boot: Factory app partition is not bootable",
        ],
        0.0,
    )
    assert refused.reading(3600.0).words == 'cannot boot: "invalid segment length 0x403797f8"'
    assert refused.refusal[-1] == "Factory app partition is not bootable"
    ota = feed(
        Health(),
        [
            "E (166) esp_image: Segment 3 0x3fce3808-0x3fce4e34 invalid: overlaps bootloader stack",
            "E (175) boot: OTA app partition slot 1 is not bootable",
            "I (180) esp_image: segment 0: paddr=00010020",
        ],
        0.0,
    )
    assert ota.state is RunState.BOOTING
    rom = feed(
        Health(),
        [
            "invalid header: 0ESP-ROM:esp32s3-20210327",
            "Build:Mar 27 2021",
            "rst:0x7 (TG0WDT_SYS_RST),boot:0x9 (SPI_FAST_FLASH_BOOT)",
            "invalid header: 0x15914773",
        ],
        0.0,
    )
    assert [reset.reason for reset in rom.resets] == ["rst:0x7 (TG0WDT_SYS_RST)"]
    assert rom.reading(3600.0).words == 'cannot boot: "invalid header: 0x15914773"'


def test_a_brownout_is_power_trouble_by_its_message_or_its_reset_reason() -> None:
    """s3-brownout-bod-line, s2-brownout-reset-loop."""
    message = feed(
        Health(),
        ["E BOD: Brownout detector was triggered", S3_RESET[0], "rst:0x3 (RTC_SW_SYS_RST)"],
        0.0,
    )
    assert message.state is RunState.POWER
    reason = feed(
        Health(),
        [
            "Build:Oct 25 2019",
            "rst:0xf (BROWN_OUT_RST),boot:0xa (SPI_FAST_FLASH_BOOT)",
            "I (22) boot: ESP-IDF v4.3.2-dirty 2nd stage bootloader",
        ],
        0.0,
    )
    assert reason.reading().words == "power trouble: brownout reset, rst:0xf (BROWN_OUT_RST)"
    feed(reason, ["I (310) main_task: Calling app_main()"], 1.0)
    assert reason.reading(1.0).state is RunState.POWER
    assert reason.reading(1.0 + STABLE_S).words.startswith("running · brownout")


def test_a_task_watchdog_in_a_running_app_is_a_warning() -> None:
    """s3-task-wdt-running-idf."""
    health = feed(
        Health(),
        [
            "I (10802) gfx: Sent queued notification",
            "E (15793) task_wdt: Task watchdog got triggered. The following "
            "tasks/users did not reset the watchdog in time:",
            "E (15793) task_wdt:  - IDLE1 (CPU 1)",
            "E (15793) task_wdt: Print CPU 1 backtrace",
            "",
            "Backtrace: 0x40377CEE:0x3FC9E1D0 0x40377241:0x3FC9E1F0",
        ],
        0.0,
    )
    assert health.reading(5.0).words == "running · task watchdog 5 s ago (IDLE1)"
    assert health.panic == []


def test_a_board_that_stops_printing_is_silent_and_download_mode_is_not() -> None:
    """s2-micropython-stops-after-entry, s2-download-mode-waiting."""
    health = feed(Health(), S3_RESET + S3_LOAD, 0.0)
    assert health.reading(SILENT_S - 1).state is RunState.BOOTING
    assert health.reading(SILENT_S).words == "silent for 30 s"
    download = feed(
        Health(),
        [
            S3_RESET[0],
            "rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0/1/SPI))",
            "waiting for download",
        ],
        0.0,
    )
    assert download.reading(3600.0).state is RunState.DOWNLOAD


def test_every_state_has_a_machine_word() -> None:
    assert [state.word for state in RunState] == [
        "no-output",
        "download-mode",
        "booting",
        "running",
        "panicked",
        "crashing-at-boot",
        "cannot-boot",
        "power-trouble",
        "silent",
    ]


def test_a_running_apps_own_words_are_not_the_roms_or_the_bootloaders() -> None:
    """An app checking an OTA image logs esp_image's errors; a web server may say "invalid
    header"; esp_backtrace_print prints a backtrace: the app runs on."""
    health = feed(
        Health(),
        [
            "I (5000) app: OTA started",
            "E (9000) esp_image: invalid segment length 0x403797f8",
            "W (9001) http: invalid header: X-Foo",
            "Backtrace: 0x40377CEE:0x3FC9E1D0 0x40377241:0x3FC9E1F0",
            "mode: auto",
        ],
        10.0,
    )
    assert health.reading().words == "running"
    assert health.panic == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*S3_RESET, *S3_LOAD, *PANIC, "invalid header: 0xffff",
                                 "E (1) boot: Factory app partition is not bootable",
                                 "E BOD: Brownout detector was triggered", "I (5) app: hi",
                                 "rst:0x", "rst:0xzz (", "SP-ROM:", "ets Jun  8 2016 00:22:57",
                                 "E (2) task_wdt:  - IDLE1 (CPU 1)", ""]) | st.text(), max_size=40),
       st.binary(max_size=300))  # fmt: skip
def test_any_mix_of_lines_and_garbage_reads_as_some_state(texts: list[str], junk: bytes) -> None:
    health, splitter = Health(), Splitter()
    for at, text in enumerate(texts):
        for line in splitter.feed(text.encode() + junk[at % 7 :][:9] + b"\r\n", float(at)):
            health.see(line)
    reading = health.reading(1000.0)
    assert reading.state in RunState and reading.words
    if health.refusal:  # a board that cannot boot never reads as running or silent
        assert reading.state is RunState.CANNOT_BOOT


def test_the_build_a_boot_names_is_read_from_its_start_up_and_forgotten_at_a_reset() -> None:
    """s3-idf-start-markers-esphome (ESP-IDF 5.1, tag cpu_start); v5.3 says app_init: the
    ELF's SHA-256 a boot's start-up names is the build that runs. The panic handler's own
    "ELF file SHA256:" line is not a start-up."""
    health = feed(Health(), [*S3_RESET, *S3_LOAD], 0.0)
    assert health.reading().elf == ""
    feed(health, ["I (777) cpu_start: ELF file SHA256:  968bda9fce6200dd..."], 0.5)
    assert health.reading().elf == "968bda9fce6200dd"
    feed(health, [*S3_RESET, *S3_LOAD], 5.0)  # a RESET: which build comes is not said yet
    assert health.reading().elf == ""
    feed(health, ["ELF file SHA256: a760eaa80003108b"], 5.5)  # a panic report's line
    assert health.reading().elf == ""
    feed(health, ["I (299) app_init: ELF file SHA256:  3e4a2b1c0d9e8f7a..."], 6.0)
    assert health.reading().elf == "3e4a2b1c0d9e8f7a"
