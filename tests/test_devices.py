"""devices: finding a container's ports, their FME and card in sysfs, on both drivers."""

import os
from pathlib import Path

import pytest
from conftest import AFU_1, REGION_A, REGION_B
from simnode import SimNode, add_card

from fpga_crihook.devices import Driver, resolve_ports
from fpga_crihook.errors import DeviceError
from fpga_crihook.oci import Device, parse_device
from fpga_crihook.settings import Settings


def _settings(node: SimNode) -> Settings:
    return Settings(sysfs=node.sysfs, devfs=node.devfs, bitstreams=node.store)


@pytest.mark.parametrize(
    ("driver", "port_name", "fme_name"),
    [("dfl", "dfl-port.0", "dfl-fme.0"), ("opae", "intel-fpga-port.0", "intel-fpga-fme.0")],
)
def test_port_is_found_by_device_numbers_with_its_fme(
    node: SimNode, driver: str, port_name: str, fme_name: str
) -> None:
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    device = parse_device(card.ports[0].device("/dev/whatever-in-container"))

    [port] = resolve_ports([device], _settings(node))

    assert port.name == port_name
    assert port.driver is Driver[driver.upper()]
    assert port.fme.name == fme_name
    assert port.device_node == node.devfs / port_name
    assert port.fme.device_node == node.devfs / fme_name
    assert port.pci_address == "0000:5e:00.0"
    assert port.read_afu_id(0) == AFU_1
    assert port.fme.read_interface_id(0) == REGION_A
    assert port.read_port_id(0) == 0


def test_port_is_found_by_name_when_numbers_are_absent(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    device = Device(path="/dev/dfl-port.1")
    [port] = resolve_ports([device], _settings(node))
    assert port.name == "dfl-port.1"
    assert port.read_port_id(0) == 1


def test_port_found_by_name_must_have_the_given_numbers(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    os.unlink(node.sysfs / "dev" / "char" / "511:0")
    device = parse_device(card.ports[0].device() | {"minor": 7})
    with pytest.raises(DeviceError, match="refusing to guess"):
        resolve_ports([device], _settings(node))


def test_other_devices_are_ignored(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    devices = [
        Device(path="/dev/null", type="c", major=1, minor=3),
        Device(path="/dev/fuse"),
        parse_device(card.ports[0].device()),
        parse_device(card.ports[0].device("/dev/again")),
    ]
    assert [port.name for port in resolve_ports(devices, _settings(node))] == ["dfl-port.0"]


def test_fme_device_numbers_are_not_a_port(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    device = Device(path="/dev/dfl-fme.0", type="c", major=510, minor=0)
    assert resolve_ports([device], _settings(node)) == []


def test_a_missing_port_name_is_an_error(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    with pytest.raises(DeviceError, match="no FPGA port called dfl-port.9"):
        resolve_ports([Device(path="/dev/dfl-port.9")], _settings(node))


def test_two_ports_share_one_fme(node: SimNode) -> None:
    card = add_card(node, "dfl", index=1, interface_id=REGION_B, afu_ids=[AFU_1, AFU_1])
    devices = [parse_device(port.device()) for port in card.ports]
    ports = resolve_ports(devices, _settings(node))
    assert [port.name for port in ports] == ["dfl-port.0", "dfl-port.1"]
    assert ports[0].fme == ports[1].fme


def test_dev_char_link_out_of_sysfs_is_refused(node: SimNode, tmp_path: Path) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    outside = tmp_path / "elsewhere" / "dfl-port.0"
    outside.mkdir(parents=True)
    link = node.sysfs / "dev" / "char" / "511:0"
    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(DeviceError, match="points outside"):
        resolve_ports(
            [Device(path="/dev/dfl-port.0", type="c", major=511, minor=0)], _settings(node)
        )


def test_a_port_found_by_name_outside_sysfs_is_refused(node: SimNode, tmp_path: Path) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    class_link = node.sysfs / "class" / "fpga_region" / "region0"
    outside = tmp_path / "elsewhere" / "region0"
    outside.parent.mkdir()
    Path(os.path.realpath(class_link)).rename(outside)
    class_link.unlink()
    class_link.symlink_to(outside)
    with pytest.raises(DeviceError, match="resolves outside"):
        resolve_ports([Device(path="/dev/dfl-port.0")], _settings(node))


def test_fme_without_interface_id_is_an_error(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    card.interface_file.unlink()
    [port] = resolve_ports([parse_device(card.ports[0].device())], _settings(node))
    with pytest.raises(DeviceError, match="expected one region interface ID"):
        port.fme.read_interface_id(0)


def test_port_without_a_single_fme_beside_it_is_an_error(node: SimNode) -> None:
    card = add_card(node, "opae", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    (card.fme_dir.parent / "intel-fpga-fme.9").mkdir()
    with pytest.raises(DeviceError, match="expected one intel-fpga-fme.N"):
        resolve_ports([parse_device(card.ports[0].device())], _settings(node))


def test_garbage_in_afu_id_is_a_device_error(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=["not-an-id"])
    [port] = resolve_ports([parse_device(card.ports[0].device())], _settings(node))
    with pytest.raises(DeviceError, match="afu_id: 'not-an-id' is not a 32-hex-digit ID"):
        port.read_afu_id(0)
