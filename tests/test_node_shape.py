"""The simulated nodes have the shape of a real one, and the hook does not lean on the extras.

OPAE's enumeration (its xfpga plugin) finds a card through the class
device's link into the PCI tree, reads the PCI function's IDs through the
class device's ``device`` link, and takes the FME and ports from the
class directory (docs/design.md#sysfs). The optional attributes (``errors/``,
``userclk_*``, ``bitstream_metadata``) are absent on some driver versions,
so the hook and the operator commands must work without them.
"""

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, HOOK, REGION_A, REPO, run_cli
from simnode import SimCard, SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook.errors import ExitStatus

# What OPAE's xfpga plugin (sysfs.c) expects of the class device's link target and children.
PCI_PATH = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-9])/fpga")
REGION_NAME = {
    "dfl": re.compile(r"dfl-(fme|port)\.([0-9]+)"),
    "opae": re.compile(r"intel-fpga-(fme|port)\.([0-9]+)"),
}
CLASS_DIR = {"dfl": "class/fpga_region", "opae": "class/fpga"}


def _class_devices(sysfs: Path, driver: str) -> list[Path]:
    """The class devices that are cards: the DFL FME's own PR region has no FME or port."""
    return [
        path
        for path in sorted((sysfs / CLASS_DIR[driver]).iterdir())
        if any(REGION_NAME[driver].fullmatch(child.name) for child in path.iterdir())
    ]


def _check_card_shape(sysfs: Path, driver: str, class_device: Path) -> None:
    target = os.readlink(class_device)
    assert PCI_PATH.search(target), target
    pci_dir = (class_device / "device").resolve()
    assert (pci_dir / "vendor").read_text() == "0x8086\n"
    assert (pci_dir / "device").read_text() == "0x09c4\n"
    for name in ("subsystem_vendor", "subsystem_device"):
        int((pci_dir / name).read_text(), 0)
    assert (sysfs / "bus" / "pci" / "devices" / pci_dir.name).resolve() == pci_dir
    assert (sysfs / "bus" / "pci" / "devices" / pci_dir.parent.name).resolve() == pci_dir.parent
    matches = [REGION_NAME[driver].fullmatch(child.name) for child in class_device.iterdir()]
    kinds = sorted(match[1] for match in matches if match)
    ports = kinds.count("port")
    [fme] = class_device.glob("*fme.*")
    assert kinds == ["fme"] + ["port"] * ports
    assert (fme / "ports_num").read_text() == f"{ports}\n"
    for name in ("bitstream_id", "bitstream_metadata", "socket_id"):
        int((fme / name).read_text(), 0)
    assert (fme / "errors").is_dir()
    for port in class_device.glob("*port.*"):
        int((port / "errors" / "errors").read_text(), 0)
        for name in ("freqcmd", "freqcntrcmd", "freqsts", "freqcntrsts"):
            assert (port / f"userclk_{name}").exists()
        # The OPAE driver clears port errors through errors/clear, the DFL one through
        # errors/errors itself.
        assert (port / "errors" / "clear").exists() is (driver == "opae")


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_a_simulated_card_has_what_opae_enumeration_reads(node: SimNode, driver: str) -> None:
    add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    add_card(
        node,
        driver,
        index=1,
        interface_id=REGION_A,
        afu_ids=[AFU_1],
        first_port=2,
        pci_address="0000:af:00.0",
    )

    cards = _class_devices(node.sysfs, driver)

    assert [card.name for card in cards] == (
        ["region0", "region1"] if driver == "dfl" else ["intel-fpga-dev.0", "intel-fpga-dev.1"]
    )
    for card in cards:
        _check_card_shape(node.sysfs, driver, card)


@pytest.mark.parametrize(("name", "driver"), [("node", "dfl"), ("opae-node", "opae")])
def test_the_shipped_nodes_have_what_opae_enumeration_reads(name: str, driver: str) -> None:
    sysfs = REPO / "testdata" / name / "sys"
    cards = _class_devices(sysfs, driver)

    assert cards
    for card in cards:
        _check_card_shape(sysfs, driver, card)


def test_the_dfl_fme_has_the_fpga_managers_pr_status(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])

    assert card.manager_status_file is not None
    assert card.manager_status_file.read_text() == ""  # no failed PR yet
    assert card.manager_status_file.is_relative_to(card.fme_dir)


def _hooks_file(tmp_path: Path) -> Path:
    document = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
    document["hook"]["path"] = str(HOOK)
    path = tmp_path / "hooks.d" / "fpga.json"
    path.parent.mkdir()
    path.write_text(json.dumps(document))
    return path


def _programs_and_lists(node: SimNode, tmp_path: Path, card: SimCard) -> None:
    """The hook programs the card's first port; devices and check see a healthy card."""
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )

    hook = run_cli(["prestart"], node.env(), state_json(bundle))
    listing = run_cli(["devices", "--json"], node.env())
    check = run_cli(["check", str(_hooks_file(tmp_path))], node.env())

    assert hook.returncode == 0, hook.stderr
    assert card.ports[0].afu_id() == AFU_2
    [listed] = json.loads(listing.stdout)["cards"]
    assert [port["health"] for port in listed["ports"]] == ["healthy"]
    assert check.returncode == 0, check.stdout
    assert "warning:" not in check.stdout


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_the_hook_and_the_commands_work_without_the_optional_attributes(
    node: SimNode, tmp_path: Path, driver: str
) -> None:
    card = add_card(
        node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1], optional_attributes=False
    )
    assert not (card.ports[0].sysfs_dir / "errors").exists()
    assert not (card.ports[0].sysfs_dir / "userclk_freqcmd").exists()
    assert not (card.fme_dir / "bitstream_metadata").exists()
    if card.manager_status_file is not None:
        shutil.rmtree(card.fme_dir / "dfl-fme-mgr.0")  # no FPGA manager attributes either

    _programs_and_lists(node, tmp_path, card)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_character_device_nodes_with_no_driver_behind_them(
    node: SimNode, tmp_path: Path, driver: str
) -> None:
    card = add_card(
        node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1], device_nodes="char"
    )
    fme_node = node.devfs / card.fme_dir.name
    assert stat.S_ISCHR(fme_node.stat().st_mode)
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )

    listing = run_cli(["devices", "--json"], node.env())
    check = run_cli(["check", str(_hooks_file(tmp_path))], node.env())
    hook = run_cli(["prestart"], node.env(FPGA_CRIHOOK_PROGRAMMER="ioctl"), state_json(bundle))

    [listed] = json.loads(listing.stdout)["cards"]
    assert [port["health"] for port in listed["ports"]] == ["healthy"]
    assert f"ok: {driver} card" in check.stdout
    assert f"FME device node {fme_node} present" in check.stdout
    # Opening a device number no driver has registered fails: the hook says so and stops.
    assert hook.returncode == ExitStatus.DEVICE
    error = json.loads(hook.stderr.splitlines()[-1])["error"]
    assert f"opening {fme_node}: ENXIO" in error
    assert card.ports[0].afu_id() == AFU_1
