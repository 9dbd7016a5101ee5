"""What each kind of board shows through pyusb: descriptors, strings, kernel drivers, access."""

from __future__ import annotations

import errno

import pytest
import usb.core
import usb.util

from espdfu.chips import ESPRESSIF_VID
from espdfu.sim import BoardKind, Fault, SimBackend, SimBus, TimeModel, VirtualBoard
from espdfu.usb.protocol import DFU_CLASS, FunctionalDescriptor
from tests.helpers.simhost import device_at, devices, one_board

# The functional descriptors as published (reference/esp-rom-dfu.md: dfu-util's logs of real
# boards show bcdDFU 0x0110 and wTransferSize 64 in both modes, and WillDetach on the runtime
# interface). Not published, the project's assumptions (espdfu.usb.rom says why): CanDnload in
# both modes, ManifestationTolerant in DFU mode (it answers dfuIDLE after a download), and a
# wDetachTimeOut of 1000 ms.
# Laid out as DFU 1.1 says: bLength 9, type 0x21, bmAttributes, wDetachTimeOut, wTransferSize,
# bcdDFUVersion (little-endian). Attributes: 0x01 CanDnload, 0x04 ManifestationTolerant,
# 0x08 WillDetach.
RUNTIME_FUNCTIONAL = bytes.fromhex("092109e80340001001")
DFU_MODE_FUNCTIONAL = bytes.fromhex("092105e80340001001")


def interfaces(dev: usb.core.Device) -> list[usb.core.Interface]:
    return list(dev.get_active_configuration())


def dfu_interfaces(dev: usb.core.Device) -> list[usb.core.Interface]:
    return [i for i in interfaces(dev) if i.bInterfaceClass == DFU_CLASS]


def test_rom_download_mode_is_cdc_acm_plus_a_dfu_runtime_at_interface_2() -> None:
    _, _, dev = one_board("esp32s2", BoardKind.ROM)
    assert (dev.idVendor, dev.idProduct, dev.bcdDevice) == (ESPRESSIF_VID, 0x0002, 0x0723)
    assert (dev.manufacturer, dev.product, dev.serial_number) == ("Espressif", "ESP32-S2", "0")
    assert [
        (i.bInterfaceNumber, i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol)
        for i in interfaces(dev)
    ] == [(0, 2, 2, 0), (1, 0x0A, 0, 0), (2, 0xFE, 1, 1)]
    comm, data, runtime = interfaces(dev)
    assert [e.bmAttributes for e in comm] == [usb.util.ENDPOINT_TYPE_INTR]
    assert sorted(usb.util.endpoint_direction(e.bEndpointAddress) for e in data) == [
        usb.util.ENDPOINT_OUT,
        usb.util.ENDPOINT_IN,
    ]
    assert runtime.bNumEndpoints == 0
    assert bytes(runtime.extra_descriptors) == RUNTIME_FUNCTIONAL


def test_dfu_mode_has_one_dfu_interface_that_is_manifestation_tolerant() -> None:
    _, _, dev = one_board("esp32s3", BoardKind.DFU)
    assert (dev.idProduct, dev.bcdDevice, dev.product) == (0x0009, 0x0723, "ESP32-S3")
    (only,) = interfaces(dev)
    assert (only.bInterfaceNumber, only.bInterfaceClass, only.bInterfaceProtocol) == (0, 0xFE, 2)
    assert bytes(only.extra_descriptors) == DFU_MODE_FUNCTIONAL


def test_the_functional_descriptor_can_also_be_asked_for() -> None:
    _, _, dev = one_board("esp32s2", BoardKind.ROM)
    assert bytes(dev.ctrl_transfer(0x81, 6, 0x2100, 2, 9)) == RUNTIME_FUNCTIONAL
    with pytest.raises(usb.core.USBError) as busy:
        dev.ctrl_transfer(0x81, 6, 0x2100, 0, 9)  # interface 0 belongs to cdc_acm
    assert busy.value.errno == errno.EBUSY
    with pytest.raises(usb.core.USBError) as stalled:
        dev.ctrl_transfer(0x81, 6, 0x2200, 2, 9)  # no such descriptor type
    assert stalled.value.errno == errno.EPIPE


def test_an_app_offers_a_dfu_runtime_under_its_own_ids() -> None:
    _, _, dev = one_board("esp32s2", BoardKind.APP)
    assert (dev.idVendor, dev.idProduct, dev.bcdDevice) == (ESPRESSIF_VID, 0x4002, 0x0100)
    assert dev.product == "ESP32-S2 app"
    (runtime,) = dfu_interfaces(dev)
    assert (runtime.bInterfaceNumber, runtime.bInterfaceProtocol) == (2, 1)


def test_an_s3_on_usb_serial_jtag_has_no_dfu_interface() -> None:
    _, _, dev = one_board("esp32s3", BoardKind.JTAG)
    assert (dev.idVendor, dev.idProduct) == (ESPRESSIF_VID, 0x1001)
    assert dev.product == "USB JTAG/serial debug unit"
    assert dfu_interfaces(dev) == []
    assert [i.bInterfaceClass for i in interfaces(dev)] == [0x02, 0x0A, 0xFF]


def test_a_board_without_permission_is_listed_but_cannot_be_opened() -> None:
    _, _, dev = one_board("esp32s2", BoardKind.NO_ACCESS)
    assert (dev.idVendor, dev.idProduct) == (ESPRESSIF_VID, 0x0002)
    with pytest.raises(usb.core.USBError) as denied:
        dev.ctrl_transfer(0xA1, 3, 0, 2, 6)
    assert (denied.value.errno, denied.value.backend_error_code) == (errno.EACCES, -3)


def test_without_a_driver_opening_fails_as_libusb_fails_on_windows() -> None:
    # Download mode is composite: libusb's composite_open finds no interface it can use.
    _, _, rom_face = one_board("esp32s2", BoardKind.NO_DRIVER)
    with pytest.raises(usb.core.USBError) as not_found:
        rom_face.ctrl_transfer(0xA1, 3, 0, 2, 6)
    assert not_found.value.backend_error_code == -5
    # WinUSB on interface 2 only: download mode opens, the DFU-mode device after DETACH
    # (one interface) does not, and pyusb raises LIBUSB_ERROR_NOT_SUPPORTED as this.
    bus, board, runtime = one_board("esp32s3", BoardKind.NO_DFU_DRIVER)
    runtime.ctrl_transfer(0x21, 0, 1000, 2, b"")  # DETACH
    (dfu_face,) = devices(bus)
    assert board.mode == "dfu"
    with pytest.raises(NotImplementedError):
        dfu_face.ctrl_transfer(0xA1, 3, 0, 0, 6)


def test_strings_and_langids_come_by_get_descriptor() -> None:
    _, _, dev = one_board("esp32s3", BoardKind.ROM)
    assert dev.langids == (0x0409,)
    assert usb.util.get_string(dev, dev.iProduct) == "ESP32-S3"
    with pytest.raises(usb.core.USBError) as stalled:
        usb.util.get_string(dev, 9)
    assert stalled.value.errno == errno.EPIPE


def test_standard_requests_answer_as_a_device_does() -> None:
    _, _, dev = one_board("esp32s2", BoardKind.DFU)
    device = bytes(dev.ctrl_transfer(0x80, 6, 0x0100, 0, 18))
    assert device[0:2] == b"\x12\x01" and device[8:12] == b"\x3a\x30\x02\x00"
    config = bytes(dev.ctrl_transfer(0x80, 6, 0x0200, 0, 255))
    assert len(config) == config[2] == dev.get_active_configuration().wTotalLength == 27
    assert bytes(dev.ctrl_transfer(0x80, 6, 0x0200, 0, 4)) == config[:4]  # cut to wLength
    assert list(dev.ctrl_transfer(0x80, 8, 0, 0, 1)) == [1]
    assert dev.ctrl_transfer(0x00, 9, 1, 0) == 0
    with pytest.raises(usb.core.USBError) as stalled:
        dev.ctrl_transfer(0x80, 6, 0x0600, 0, 10)  # device qualifier: full speed only
    assert stalled.value.errno == errno.EPIPE


def test_where_a_board_sits_on_the_bus() -> None:
    bus = SimBus.from_spec("esp32s2*6", time=TimeModel.instant())
    found = devices(bus)
    assert [d.port_numbers for d in found] == [
        (1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2),
    ]  # fmt: skip
    assert [d.address for d in found] == [2, 3, 4, 5, 6, 7]
    assert {d.bus for d in found} == {1} and {d.speed for d in found} == {2}
    assert list(bus.boards) == ["1-1.1", "1-1.2", "1-1.3", "1-1.4", "1-2.1", "1-2.2"]
    assert found[0].port_number == 1 and found[4].port_number == 1
    assert found[0].parent is None


def test_a_board_can_be_plugged_at_a_given_port() -> None:
    bus = SimBus(TimeModel.instant())
    bus.plug(VirtualBoard("esp32s3"), path="3-2.4.1")
    board = bus.plug(VirtualBoard("esp32s2"))
    assert board.path == "1-1.1"
    dev = device_at(SimBackend(bus), "3-2.4.1")
    assert (dev.bus, dev.port_numbers, dev.idProduct) == (3, (2, 4, 1), 0x0009)


def test_the_cdc_interfaces_are_held_by_a_kernel_driver() -> None:
    _, _, dev = one_board("esp32s2", BoardKind.ROM)
    assert [dev.is_kernel_driver_active(n) for n in (0, 1, 2)] == [True, True, False]
    with pytest.raises(usb.core.USBError) as busy:
        usb.util.claim_interface(dev, 0)
    assert busy.value.errno == errno.EBUSY
    with pytest.raises(usb.core.USBError) as refused:
        dev.set_configuration()  # usbfs refuses while drivers are bound
    assert refused.value.errno == errno.EBUSY
    dev.detach_kernel_driver(0)
    usb.util.claim_interface(dev, 0)
    assert not dev.is_kernel_driver_active(0)
    usb.util.release_interface(dev, 0)
    dev.attach_kernel_driver(0)
    assert dev.is_kernel_driver_active(0)


def test_an_interface_has_one_owner_at_a_time() -> None:
    bus, board, first = one_board("esp32s2", BoardKind.DFU)
    second = device_at(SimBackend(bus), board.path)
    usb.util.claim_interface(first, 0)
    with pytest.raises(usb.core.USBError) as busy:
        usb.util.claim_interface(second, 0)
    assert busy.value.errno == errno.EBUSY
    usb.util.dispose_resources(first)
    usb.util.claim_interface(second, 0)
    with pytest.raises(usb.core.USBError) as missing:
        usb.util.claim_interface(second, 5)
    assert missing.value.errno == errno.ENOENT


def test_a_descriptor_fault_breaks_the_functional_descriptor() -> None:
    bus = SimBus(TimeModel.instant())
    board = bus.plug(VirtualBoard("esp32s2", BoardKind.DFU, faults=[Fault("descriptor")]))
    dev = device_at(SimBackend(bus), board.path)
    (only,) = interfaces(dev)
    assert bytes(only.extra_descriptors)[:2] == b"\x03\x21"
    assert FunctionalDescriptor.find(bytes(only.extra_descriptors)) is None
    with pytest.raises(usb.core.USBError) as stalled:
        dev.ctrl_transfer(0x81, 6, 0x2100, 0, 9)
    assert stalled.value.errno == errno.EPIPE
    assert board.faults == [Fault("descriptor")]  # static: never consumed


def test_configuration_alternate_setting_and_halt_as_libusb_on_linux() -> None:
    _, _, dev = one_board("esp32s2", BoardKind.DFU)
    dev.set_configuration()  # nothing bound or claimed in DFU mode
    assert dev.get_active_configuration().bConfigurationValue == 1
    dev.set_interface_altsetting(0, 0)  # claims interface 0 first, as pyusb does
    with pytest.raises(usb.core.USBError) as claimed:
        dev.set_configuration()
    assert claimed.value.errno == errno.EBUSY
    with pytest.raises(usb.core.USBError) as no_alt:
        dev._ctx.backend.set_interface_altsetting(dev._ctx.handle, 0, 1)
    assert no_alt.value.errno == errno.ENOENT
    _, _, rom = one_board("esp32s2", BoardKind.ROM)
    rom.clear_halt(0x82)
    with pytest.raises(usb.core.USBError) as no_endpoint:
        rom.clear_halt(0x05)
    assert no_endpoint.value.errno == errno.ENOENT
