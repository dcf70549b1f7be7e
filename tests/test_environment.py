"""The hook under its runtime's environment: runc gives a hook only its hooks.d env, crun one
without env its own (CRI-O's). Only ``FPGA_CRIHOOK_*``, ``PATH`` and the config file may
change what the hook does.

These tests run the development install's console scripts, which do not run Python
isolated, for what the code itself pins: the exit status and the longest number JSON may
hold.
"""

from pathlib import Path

import pytest
from conftest import AFU_1, AFU_2, REGION_A, Completed, run_cli
from simnode import SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook.errors import ExitStatus

UNKNOWN_AFU = "0123456789abcdef0123456789abcdef"


def _state(node: SimNode, tmp_path: Path, afu: str) -> str:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={afu}"],
        devices=[card.ports[0].device()],
    )
    return state_json(bundle)


def _hook(node: SimNode, state: str, **extra: str) -> Completed:
    return run_cli(["prestart"], node.quiet_env(**extra), state)


@pytest.mark.parametrize(
    ("afu", "status"), [(AFU_2, ExitStatus.SUCCESS), (UNKNOWN_AFU, ExitStatus.NO_BITSTREAM)]
)
def test_pythoninspect_changes_neither_the_exit_status_nor_stderr(
    node: SimNode, tmp_path: Path, afu: str, status: ExitStatus
) -> None:
    """With it, the interpreter would print a traceback, prompt on stdin and exit 1."""
    result = _hook(node, _state(node, tmp_path, afu), PYTHONINSPECT="1")

    assert result.returncode == status
    expected = "" if status is ExitStatus.SUCCESS else "fpga-crihook: no bitstream for region"
    assert result.stderr.startswith(expected)
    assert len(result.stderr.splitlines()) == (0 if status is ExitStatus.SUCCESS else 1)


def test_pythonintmaxstrdigits_lets_no_longer_number_through(node: SimNode, tmp_path: Path) -> None:
    state = _state(node, tmp_path, AFU_2).replace('"pid": 4242', '"pid": ' + "9" * 5000)

    result = _hook(node, state, PYTHONINTMAXSTRDIGITS="0")

    assert result.returncode == ExitStatus.CONTAINER_INPUT
    assert "holds a number of more than 4300 digits" in result.stderr
