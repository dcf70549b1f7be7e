"""``check`` on the node: drivers and cards, FME device nodes, the ports a programmer
cannot reach, and the bitstream store."""

from pathlib import Path

import pytest
from checkfiles import healthy_node, hooks_file_with
from helpers import run_cli, run_on, two_drivers
from simnode import SimNode

from fpga_crihook.ids import UNHEALTHY_ID


def test_check_reports_node_problems(node: SimNode, tmp_path: Path) -> None:
    dfl, _ = two_drivers(node)
    (node.devfs / "dfl-fme.0").unlink()
    dfl.ports[1].afu_file.write_text(UNHEALTHY_ID + "\n")

    result = run_on(node, "check", str(hooks_file_with(tmp_path)))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert (
        f"error: dfl card region0 (0000:5e:00.0): FME device node {node.devfs}/dfl-fme.0 "
        "is missing: nothing can be programmed on this card"
    ) in lines
    assert (
        "error: dfl card region0 (0000:5e:00.0): unhealthy: it reports all-ones IDs: "
        "the firmware has crashed"
    ) in lines
    assert f"error: bitstream store {node.store} is missing or not readable" in lines


@pytest.mark.parametrize("programmer", ["fpgaconf", "ioctl"])
def test_check_warns_that_fpgaconf_cannot_program_the_other_ports_of_an_fme(
    node: SimNode, tmp_path: Path, programmer: str
) -> None:
    healthy_node(node)  # a two-port DFL card and a one-port OPAE card

    result = run_cli(
        ["check", str(hooks_file_with(tmp_path))], node.env(FPGA_CRIHOOK_PROGRAMMER=programmer)
    )

    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    if programmer == "ioctl":
        assert warnings == []
    else:
        assert warnings == [
            "warning: dfl card region0 (0000:5e:00.0): the fpgaconf programmer always "
            "programs port 0 of the FME, so the hook refuses dfl-port.1 "
            "(FPGA_CRIHOOK_PROGRAMMER=ioctl programs every port)"
        ]


def test_check_on_a_node_without_cards_is_an_error(node: SimNode, tmp_path: Path) -> None:
    node.store.mkdir()

    result = run_on(node, "check", str(hooks_file_with(tmp_path)))

    assert result.returncode == 1
    assert f"error: no FPGA cards under {node.sysfs}" in result.stdout
