"""The hook under its runtime's environment: runc gives a hook only its hooks.d env, crun one
without env its own. Only ``FPGA_CRIHOOK_*``, ``PATH`` and the config file may change what
the hook does.

The payload runs Python isolated (``tests/test_deployments.py`` runs it with the
interpreter's variables set); these tests run the development install's console scripts,
which do not, for what the code itself pins: the exit status, the longest number JSON may
hold, and what ``fpgaconf`` is given.
"""

import os
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, REGION_A, Completed, run_cli
from simnode import SimNode, one_port_container, write_gbs

from fpga_crihook.errors import ExitStatus

UNKNOWN_AFU = "0123456789abcdef0123456789abcdef"


def _state(node: SimNode, tmp_path: Path, afu: str) -> str:
    write_gbs(node, REGION_A, AFU_2)
    return one_port_container(node, tmp_path / "bundle", REGION_A, AFU_1, afu)[1]


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


def _fpgaconf_recording_its_environment(directory: Path, afu_file: Path) -> Path:
    """A stand-in fpgaconf: records its environment and where its output goes, programs."""
    directory.mkdir()
    program = directory / "fpgaconf"
    program.write_text(
        "#!/bin/sh\n"
        f"/usr/bin/env > {directory / 'env'}\n"
        "output=$(/bin/readlink /proc/$$/fd/1)\n"
        f'echo "$output" > {directory / "output"}\n'
        f"echo {AFU_2} > {afu_file}\n"
    )
    program.chmod(0o755)
    return program


def test_fpgaconf_gets_path_alone_and_writes_its_output_beside_the_locks(
    node: SimNode, tmp_path: Path
) -> None:
    """OPAE's library reads WITH_ASE (another plugin), LIBOPAE_LOG and LIBOPAE_LOGFILE."""
    state = _state(node, tmp_path, AFU_2)
    [afu_file] = node.sysfs.glob("class/fpga_region/region0/dfl-port.0/afu_id")
    stand_in = _fpgaconf_recording_its_environment(tmp_path / "bin", afu_file)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    runtime_environment = {
        "WITH_ASE": "1",
        "LIBOPAE_LOG": "1",
        "LIBOPAE_LOGFILE": str(tmp_path / "opae.log"),
        "TMPDIR": str(tmpdir),
        "LANG": "C.UTF-8",
        "PATH": "/usr/bin:/bin",
    }

    result = _hook(
        node,
        state,
        FPGA_CRIHOOK_PROGRAMMER="fpgaconf",
        FPGA_CRIHOOK_FPGACONF=str(stand_in),
        **runtime_environment,
    )

    assert result.returncode == ExitStatus.SUCCESS, result.stderr
    seen = dict(line.split("=", 1) for line in (tmp_path / "bin/env").read_text().splitlines())
    assert seen.pop("PATH") == "/usr/bin:/bin"
    assert set(seen) <= {"PWD", "SHLVL", "_"}  # what sh itself sets
    output = (tmp_path / "bin/output").read_text()
    assert output.startswith(str(node.root / "locks") + os.sep), output
    assert list(tmpdir.iterdir()) == []
