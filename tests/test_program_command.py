"""``program`` through the installed CLI: one port, named or by its device node,
programmed and verified."""

import json
import os
import stat
from pathlib import Path

import pytest
from aocxfiles import aocx_bytes
from helpers import AFU_1, AFU_2, BSP_AFU, REGION_A, REGION_B, error_sentence, run_on
from simnode import SimNode, add_card, gbs_bytes, write_gbs

from fpga_crihook.ids import UNHEALTHY_ID


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_program_by_device_path_programs_and_verifies(node: SimNode, driver: str) -> None:
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)

    result = run_on(node, "program", "--port", f"/dev/{card.ports[0].name}", str(gbs))

    assert result.returncode == 0, result.stderr
    assert card.ports[0].afu_id() == AFU_2
    assert result.stdout.strip() == (
        f"{card.ports[0].name} programmed with {gbs}: it now holds AFU {AFU_2}"
    )


def test_program_skips_a_port_holding_the_afu_unless_forced(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_2])
    gbs = write_gbs(node, REGION_A, AFU_2)
    fme_lock_file = node.root / "locks" / "dfl-fme.0.lock"

    skipped = run_on(node, "program", "--port", "dfl-port.0", str(gbs))
    forced = run_on(node, "program", "--port", "dfl-port.0", "--force", str(gbs))

    assert skipped.returncode == forced.returncode == 0
    assert "already holds AFU" in skipped.stdout
    assert json.loads(forced.stderr.splitlines()[-1])["event"] == "port programmed"
    assert fme_lock_file.exists()  # the FME lock was taken
    assert card.ports[0].afu_id() == AFU_2


def test_program_dry_run_changes_nothing(node: SimNode) -> None:
    card = add_card(node, "opae", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)

    result = run_on(node, "program", "--dry-run", "--port", "intel-fpga-port.0", str(gbs))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dry run: intel-fpga-port.0 would be programmed")
    assert card.ports[0].afu_id() == AFU_1


def test_program_refuses_a_file_for_another_region(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_B, AFU_2)

    message = error_sentence(run_on(node, "program", "--port", "dfl-port.0", str(gbs)))

    assert message == (
        f"{gbs} was built for region {REGION_B}, but port dfl-port.0 belongs to "
        f"dfl-fme.0, whose region is {REGION_A}"
    )
    assert card.ports[0].afu_id() == AFU_1


def test_program_refuses_an_unhealthy_card(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=UNHEALTHY_ID, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)

    message = error_sentence(run_on(node, "program", "--port", "dfl-port.0", str(gbs)))

    assert "all-ones interface ID" in message


def test_program_names_an_unknown_port(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)

    assert "no FPGA port called dfl-port.7" in error_sentence(
        run_on(node, "program", "--port", "dfl-port.7", str(gbs))
    )
    assert f"/dev/dfl-port.7 does not exist (looked for {node.devfs}/dfl-port.7)" in error_sentence(
        run_on(node, "program", "--port", "/dev/dfl-port.7", str(gbs))
    )


def test_program_an_aocx_verifies_the_embedded_afu(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[BSP_AFU])
    aocx = tmp_path / "kernel.aocx"
    aocx.write_bytes(aocx_bytes(gbs_bytes(REGION_A, BSP_AFU, name="opencl_bsp")))

    result = run_on(node, "program", "--port", "dfl-port.0", str(aocx))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.splitlines()[-1])["event"] == "port programmed"
    assert card.ports[0].afu_id() == BSP_AFU


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_program_resolves_a_device_path_by_its_numbers(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)
    alias = node.devfs / "fpga" / "second-port"
    alias.parent.mkdir()
    os.mknod(alias, 0o600 | stat.S_IFCHR, os.makedev(card.ports[1].major, card.ports[1].minor))

    result = run_on(node, "program", "--port", "/dev/fpga/second-port", str(gbs))

    assert result.returncode == 0, result.stderr
    assert [port.afu_id() for port in card.ports] == [AFU_1, AFU_2]


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_program_refuses_a_character_device_that_is_not_a_port(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)
    os.mknod(node.devfs / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))

    message = error_sentence(run_on(node, "program", "--port", "/dev/null", str(gbs)))

    assert "/dev/null is a character device but not an FPGA port" in message
