"""``devices``: every card of both drivers, its health, and the device plugin's resource
names; the scan itself, then the command's table and JSON through the installed CLI."""

import base64
import errno
import json
import shutil
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, REGION_A, REGION_B, run_on, two_drivers
from simnode import SimNode, add_card

from fpga_crihook import sysfs
from fpga_crihook.commands import devices as inventory
from fpga_crihook.commands.devices import Health, af_resource, region_resource, scan
from fpga_crihook.devices import Driver
from fpga_crihook.ids import UNHEALTHY_ID
from fpga_crihook.settings import Settings


def _settings(node: SimNode, busy_timeout: float = 0.0) -> Settings:
    return Settings(sysfs=node.sysfs, devfs=node.devfs, busy_timeout=busy_timeout)


def test_cards_of_both_drivers_are_found_with_their_ports(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_2])
    add_card(
        node, "opae", index=0, interface_id=REGION_B, afu_ids=[AFU_2], pci_address="0000:3b:00.0"
    )

    dfl, opae = scan(_settings(node))

    assert (dfl.driver, dfl.name, dfl.pci_address) == (Driver.DFL, "region0", "0000:5e:00.0")
    assert dfl.fme is not None
    assert (dfl.fme.name, dfl.fme.device_node) == ("dfl-fme.0", node.devfs / "dfl-fme.0")
    assert dfl.fme.interface.value == REGION_A
    assert [(p.name, p.port_id, p.afu.value, p.health) for p in dfl.ports] == [
        ("dfl-port.0", 0, AFU_1, Health.HEALTHY),
        ("dfl-port.1", 1, AFU_2, Health.HEALTHY),
    ]
    assert dfl.ports[1].device_node == node.devfs / "dfl-port.1"
    assert (opae.driver, opae.pci_address) == (Driver.OPAE, "0000:3b:00.0")
    assert opae.fme is not None
    assert opae.fme.interface.value == REGION_B
    assert [(p.name, p.afu.value) for p in opae.ports] == [("intel-fpga-port.0", AFU_2)]


def test_ports_are_listed_in_numeric_order(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1] * 11)

    [card] = scan(_settings(node))

    assert [port.name for port in card.ports][-3:] == ["dfl-port.8", "dfl-port.9", "dfl-port.10"]


def test_fme_pr_region_in_the_class_dir_is_not_a_card(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    # The real DFL driver lists the FME's own PR region in class/fpga_region too (so does
    # the simulated node).
    pr_region = node.sysfs / "class" / "fpga_region" / "region100"
    assert pr_region.resolve() == card.interface_file.parent.resolve()

    assert [found.name for found in scan(_settings(node))] == ["region0"]


def test_no_driver_directories_means_no_cards(node: SimNode) -> None:
    assert scan(_settings(node)) == []


def test_all_ones_afu_makes_the_port_unhealthy_without_af_resource(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[UNHEALTHY_ID, AFU_1])

    [card] = scan(_settings(node))

    crashed, fine = card.ports
    assert (crashed.health, crashed.af_resource) == (Health.UNHEALTHY, None)
    assert fine.health is Health.HEALTHY
    assert fine.af_resource == af_resource(REGION_A, AFU_1)


def test_all_ones_interface_makes_every_port_unhealthy(node: SimNode) -> None:
    add_card(node, "opae", index=0, interface_id=UNHEALTHY_ID, afu_ids=[AFU_1])

    [card] = scan(_settings(node))

    assert card.fme is not None
    assert card.fme.interface.health is Health.UNHEALTHY
    assert card.region_resource is None
    assert [(port.health, port.af_resource) for port in card.ports] == [(Health.UNHEALTHY, None)]


def test_port_that_stays_busy_is_reported_busy(
    node: SimNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_2])
    busy_file = card.ports[0].afu_file
    real_read = sysfs._read_raw

    def read(path: Path) -> bytes:
        if path == busy_file:
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real_read(path)

    monkeypatch.setattr(sysfs, "_read_raw", read)

    [found] = scan(_settings(node, busy_timeout=0.05))

    busy, other = found.ports
    assert busy.health is Health.BUSY
    assert busy.afu.problem is not None
    assert "stayed busy (EBUSY)" in busy.afu.problem
    assert other.health is Health.HEALTHY


def test_unreadable_afu_id_is_reported_with_its_reason(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    card.ports[0].afu_file.write_text("not-an-id\n")

    [found] = scan(_settings(node))

    [port] = found.ports
    assert port.health is Health.UNREADABLE
    assert port.afu.problem is not None
    assert "'not-an-id' is not a 32-hex-digit ID" in port.afu.problem


def test_card_without_fme_is_reported_not_skipped(node: SimNode) -> None:
    card = add_card(node, "opae", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    shutil.rmtree(card.fme_dir)

    [found] = scan(_settings(node))

    assert found.fme is None
    assert found.problem is not None
    assert "expected one intel-fpga-fme.N" in found.problem
    assert [port.health for port in found.ports] == [Health.UNREADABLE]


def test_region_resource_is_the_plain_interface_id() -> None:
    assert region_resource(REGION_A) == f"fpga.intel.com/region-{REGION_A}"


def test_af_resource_encodes_both_ids_in_unpadded_url_safe_base64() -> None:
    name = af_resource(REGION_A, AFU_1)

    assert name == "fpga.intel.com/af-ce4.d84.zkiWk5jwXzOUbVYHCL4QithCTcSko8QT-J5DNoP5BAs"
    encoded = name.rsplit(".", 1)[1]
    assert "=" not in encoded
    assert base64.urlsafe_b64decode(encoded + "=") == bytes.fromhex(REGION_A + AFU_1)
    assert len(name.split("/", 1)[1]) <= inventory.MAX_RESOURCE_NAME


def test_class_entry_that_vanished_is_reported_and_the_other_cards_still_listed(
    node: SimNode,
) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    # A card being unplugged: its class entry points at a device that is gone.
    (node.sysfs / "class" / "fpga_region" / "region9").symlink_to(node.sysfs / "devices" / "gone")

    healthy, gone = scan(_settings(node))

    assert healthy.name == "region0"
    assert [port.health for port in healthy.ports] == [Health.HEALTHY]
    assert (gone.name, gone.fme, gone.ports) == ("region9", None, ())
    assert gone.problem is not None
    assert "cannot list" in gone.problem
    assert "No such file or directory" in gone.problem


# --- the command --------------------------------------------------------------------------


def test_devices_table_shows_each_port_of_both_drivers(node: SimNode) -> None:
    two_drivers(node)

    result = run_on(node, "devices")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "DRIVER", "PCI", "ADDRESS", "FME", "INTERFACE", "ID", "PORT", "ID", "AFU", "ID", "HEALTH",
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:4]]
    assert rows == [
        ["dfl", "0000:5e:00.0", f"{node.devfs}/dfl-fme.0", REGION_A,
         f"{node.devfs}/dfl-port.0", "0", AFU_1, "healthy"],
        ["dfl", "0000:5e:00.0", f"{node.devfs}/dfl-fme.0", REGION_A,
         f"{node.devfs}/dfl-port.1", "1", AFU_2, "healthy"],
        ["opae", "0000:3b:00.0", f"{node.devfs}/intel-fpga-fme.0", REGION_B,
         f"{node.devfs}/intel-fpga-port.0", "0", AFU_1, "healthy"],
    ]  # fmt: skip
    # Columns line up: every row's AFU ID starts where the header's does.
    column = lines[0].index("AFU ID")
    assert all(line[column:].startswith((AFU_1, AFU_2)) for line in lines[1:4])
    assert f"fpga.intel.com/region-{REGION_A}  " in result.stdout
    assert "dfl-port.0, dfl-port.1" in result.stdout


def test_devices_json_lists_cards_ports_and_resources(node: SimNode) -> None:
    two_drivers(node)

    result = run_on(node, "devices", "--json")

    assert result.returncode == 0, result.stderr
    dfl, opae = json.loads(result.stdout)["cards"]
    assert dfl["driver"] == "dfl"
    assert dfl["fme"]["interface_id"] == REGION_A
    assert dfl["fme"]["device_node"] == str(node.devfs / "dfl-fme.0")
    assert [port["afu_id"] for port in dfl["ports"]] == [AFU_1, AFU_2]
    assert opae["driver"] == "opae"
    assert opae["pci_address"] == "0000:3b:00.0"
    [port] = opae["ports"]
    assert port == {
        "name": "intel-fpga-port.0",
        "id": 0,
        "device_node": str(node.devfs / "intel-fpga-port.0"),
        "afu_id": AFU_1,
        "health": "healthy",
        "problem": None,
        "resources": [
            f"fpga.intel.com/region-{REGION_B}",
            "fpga.intel.com/af-695.d84.aVKNtusxV3qMNmj5-qCB9thCTcSko8QT-J5DNoP5BAs",
        ],
    }


def test_devices_shows_an_unhealthy_port_and_announces_nothing_for_it(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[UNHEALTHY_ID])

    result = run_on(node, "devices", "--json")

    [port] = json.loads(result.stdout)["cards"][0]["ports"]
    assert (port["health"], port["resources"]) == ("unhealthy", [])
    table = run_on(node, "devices").stdout
    assert "unhealthy" in table
    assert "RESOURCE" not in table


def test_devices_table_explains_an_unreadable_port(node: SimNode) -> None:
    card = add_card(node, "opae", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    card.ports[0].afu_file.write_text("garbage\n")

    result = run_on(node, "devices")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[-2:] == ["-", "unreadable"]
    assert result.stdout.splitlines()[-1] == (
        f"problem: {card.ports[0].afu_file}: 'garbage' is not a 32-hex-digit ID"
    )


def test_devices_on_a_node_without_cards_says_so(node: SimNode) -> None:
    result = run_on(node, "devices")

    assert result.returncode == 0
    assert result.stdout.startswith(f"no FPGA cards under {node.sysfs}")
    assert json.loads(run_on(node, "devices", "--json").stdout) == {"cards": []}
