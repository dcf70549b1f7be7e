"""fpgaconf: the PCI address and file handed to OPAE's tool, and what its failures look like.

A stand-in ``fpgaconf`` shell script records its arguments, copies the file
it was given, and (unless told otherwise) emulates programming by writing
the simulated port's ``afu_id``.
"""

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from aocxfiles import aocx_bytes
from conftest import AFU_1, AFU_2, AFU_3, REGION_A, RunHook, run_cli
from simnode import (
    SimCard,
    SimNode,
    SimPort,
    add_card,
    gbs_bytes,
    gbs_metadata,
    state_json,
    write_bundle,
    write_gbs,
)

from fpga_crihook.bitstream import BitstreamKind, open_bitstream, parse_gbs
from fpga_crihook.deadline import Deadline
from fpga_crihook.devices import Port, port_from_sysfs_dir
from fpga_crihook.errors import ProgrammingError, SettingsError
from fpga_crihook.fpgaconf import FpgaconfProgrammer
from fpga_crihook.settings import ProgrammerKind, Settings


class StandIn:
    """A fake fpgaconf in *directory* and the files it leaves behind."""

    def __init__(
        self, directory: Path, afu_file: Path | None, exit_status: int = 0, before: str = ""
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "fpgaconf"
        self.args_file = directory / "args"
        self.copy = directory / "copy.gbs"
        self.mode_file = directory / "mode"
        program = afu_file is not None and exit_status == 0
        self.path.write_text(
            "#!/bin/sh\n"
            f"printf '%s\\n' \"$@\" > {self.args_file}\n"
            'for last in "$@"; do :; done\n' + before + f'cp "$last" {self.copy}\n'
            f'stat -c %a "$last" > {self.mode_file}\n'
            'echo "Reading bitstream"\n'
            + (f"echo {AFU_2} > {afu_file}\n" if program else "")
            + (
                f'echo "Error writing bitstream to FPGA: busy" >&2\nexit {exit_status}\n'
                if exit_status
                else ""
            )
        )
        self.path.chmod(0o755)

    def argv(self) -> list[str]:
        return self.args_file.read_text().splitlines()


def _port(node: SimNode, pci_address: str = "0000:5e:00.0") -> tuple[Port, SimPort]:
    card = add_card(
        node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1], pci_address=pci_address
    )
    settings = Settings(sysfs=node.sysfs, devfs=node.devfs)
    return port_from_sysfs_dir(card.ports[0].sysfs_dir, settings), card.ports[0]


def _settings(node: SimNode, stand_in: StandIn, timeout: float = 30.0) -> Settings:
    return Settings(
        sysfs=node.sysfs,
        devfs=node.devfs,
        programmer=ProgrammerKind.FPGACONF,
        fpgaconf=str(stand_in.path),
        fpgaconf_timeout=timeout,
    )


def test_fpgaconf_gets_the_pci_address_in_hex_and_a_copy_of_the_validated_gbs(
    node: SimNode, tmp_path: Path
) -> None:
    port, sim_port = _port(node, pci_address="0001:af:1f.3")
    gbs = write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)

    with open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream:
        FpgaconfProgrammer(_settings(node, stand_in)).program(port, bitstream)

    assert stand_in.argv()[:-1] == [
        "--segment",
        "0x0001",
        "-B",
        "0xaf",
        "-D",
        "0x1f",
        "-F",
        "0x3",
    ]
    assert stand_in.argv()[-1] != str(gbs)
    assert stand_in.copy.read_bytes() == gbs.read_bytes()
    assert sim_port.afu_id() == AFU_2


def test_failing_fpgaconf_error_names_exit_status_and_output(node: SimNode, tmp_path: Path) -> None:
    port, sim_port = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file, exit_status=3)

    with (
        open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(ProgrammingError) as caught,
    ):
        FpgaconfProgrammer(_settings(node, stand_in)).program(port, bitstream)

    message = str(caught.value)
    assert f"fpgaconf programming port dfl-port.0 with {gbs} failed with exit status 3" in message
    assert message.endswith("Reading bitstream | Error writing bitstream to FPGA: busy")
    assert "\n" not in message
    assert sim_port.afu_id() == AFU_1


def test_fpgaconf_output_in_the_error_is_bounded_to_the_last_lines(
    node: SimNode, tmp_path: Path
) -> None:
    port, _ = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    chatty = tmp_path / "fpgaconf"
    chatty.write_text('#!/bin/sh\nfor i in $(seq 1 5000); do echo "line $i"; done\nexit 1\n')
    chatty.chmod(0o755)
    settings = Settings(sysfs=node.sysfs, fpgaconf=str(chatty))

    with (
        open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(ProgrammingError) as caught,
    ):
        FpgaconfProgrammer(settings).program(port, bitstream)

    assert str(caught.value).endswith(": line 4996 | line 4997 | line 4998 | line 4999 | line 5000")


def test_fpgaconf_that_hangs_is_killed_after_the_timeout(node: SimNode, tmp_path: Path) -> None:
    port, _ = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    sleeper = tmp_path / "fpgaconf"
    sleeper.write_text("#!/bin/sh\necho starting\nexec sleep 30\n")
    sleeper.chmod(0o755)
    settings = Settings(sysfs=node.sysfs, fpgaconf=str(sleeper), fpgaconf_timeout=0.5)

    with (
        open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(
            ProgrammingError, match=r"did not finish within 0\.5 s, so it was killed: starting"
        ),
    ):
        FpgaconfProgrammer(settings).program(port, bitstream)


def test_fpgaconf_gets_no_more_time_than_the_deadline_leaves(node: SimNode, tmp_path: Path) -> None:
    port, _ = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    sleeper = tmp_path / "fpgaconf"
    sleeper.write_text("#!/bin/sh\nexec sleep 30\n")
    sleeper.chmod(0o755)
    settings = Settings(
        sysfs=node.sysfs, fpgaconf=str(sleeper), fpgaconf_timeout=60, deadline=Deadline.start(1)
    )

    started = time.monotonic()
    with (
        open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(ProgrammingError) as caught,
    ):
        FpgaconfProgrammer(settings).program(port, bitstream)

    assert time.monotonic() - started < 10
    assert "all that was left of the hook's 1 s deadline (FPGA_CRIHOOK_DEADLINE), so it was " in (
        str(caught.value)
    )


def test_missing_fpgaconf_path_is_a_clear_settings_error(node: SimNode) -> None:
    with pytest.raises(SettingsError, match="/nowhere/fpgaconf, which is not an executable file"):
        FpgaconfProgrammer(Settings(sysfs=node.sysfs, fpgaconf="/nowhere/fpgaconf"))


def test_fpgaconf_not_on_path_is_a_clear_settings_error(
    node: SimNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(SettingsError, match="'fpgaconf', which is not on PATH"):
        FpgaconfProgrammer(Settings(sysfs=node.sysfs))


def test_fpgaconf_is_found_on_path(
    node: SimNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, sim_port = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)
    monkeypatch.setenv("PATH", str(stand_in.path.parent))

    with open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream:
        FpgaconfProgrammer(Settings(sysfs=node.sysfs)).program(port, bitstream)

    assert len(stand_in.argv()) == 9


def _hook_world(node: SimNode, tmp_path: Path, request_afu: str) -> tuple[str, SimPort]:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={request_afu}"],
        devices=[card.ports[0].device()],
    )
    return state_json(bundle), card.ports[0]


def _hook_env(stand_in: StandIn, tmp_dir: Path) -> dict[str, str]:
    return {
        "FPGA_CRIHOOK_PROGRAMMER": "fpgaconf",
        "FPGA_CRIHOOK_FPGACONF": str(stand_in.path),
        "TMPDIR": str(tmp_dir),
    }


def test_hook_programs_through_fpgaconf_and_verifies(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, sim_port = _hook_world(node, tmp_path, AFU_2)
    gbs = write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)

    result = run_hook(node, state, **_hook_env(stand_in, tmp_path))

    assert result.returncode == 0, result.stderr
    assert sim_port.afu_id() == AFU_2
    assert Path(stand_in.argv()[-1]).parent == tmp_path
    assert stand_in.copy.read_bytes() == gbs.read_bytes()
    assert list(tmp_path.glob("fpga-crihook-*")) == []


def test_fpgaconf_programs_what_was_validated_even_if_the_store_file_is_overwritten(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, sim_port = _hook_world(node, tmp_path, AFU_2)
    gbs = write_gbs(node, REGION_A, AFU_2)
    validated = gbs.read_bytes()
    other = tmp_path / "other.gbs"
    other.write_bytes(gbs_bytes(REGION_A, AFU_3, raw=os.urandom(len(validated))))
    # An operator's `cp` over the store file while fpgaconf is starting up.
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file, before=f"cp {other} {gbs}\n")

    result = run_hook(node, state, **_hook_env(stand_in, tmp_path))

    assert result.returncode == 0, result.stderr
    assert gbs.read_bytes() == other.read_bytes()  # the overwrite did happen
    assert stand_in.copy.read_bytes() == validated


def test_fpgaconf_that_exits_0_without_programming_is_caught_by_verification(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, sim_port = _hook_world(node, tmp_path, AFU_2)
    write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", afu_file=None)

    result = run_hook(node, state, **_hook_env(stand_in, tmp_path))

    assert result.returncode == 1
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert f"port dfl-port.0 reports AFU {AFU_1} after programming" in error
    assert f"not {AFU_2}" in error
    assert stand_in.argv()  # fpgaconf did run: verification, not the call, caught it
    assert sim_port.afu_id() == AFU_1


def test_hook_with_missing_fpgaconf_fails_with_a_clear_error(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, sim_port = _hook_world(node, tmp_path, AFU_2)
    write_gbs(node, REGION_A, AFU_2)

    result = run_hook(
        node,
        state,
        FPGA_CRIHOOK_PROGRAMMER="fpgaconf",
        FPGA_CRIHOOK_FPGACONF=str(tmp_path / "missing"),
    )

    assert result.returncode == 1
    assert "which is not an executable file" in json.loads(result.stderr.splitlines()[-1])["error"]
    assert sim_port.afu_id() == AFU_1


def test_aocx_through_fpgaconf_gets_a_private_temporary_gbs_removed_afterwards(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, sim_port = _hook_world(node, tmp_path, AFU_3)
    embedded = gbs_bytes(REGION_A, AFU_2, raw=b"\x5a" * 8192, name="opencl_bsp")
    aocx = node.store / REGION_A / f"{AFU_3}.aocx"
    aocx.parent.mkdir(parents=True)
    aocx.write_bytes(aocx_bytes(embedded))
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()

    result = run_hook(node, state, **_hook_env(stand_in, private_tmp))

    assert result.returncode == 0, result.stderr
    assert sim_port.afu_id() == AFU_2  # the embedded GBS's accelerator-type-uuid
    handed = Path(stand_in.argv()[-1])
    assert handed.parent == private_tmp
    assert handed.suffix == ".gbs"
    assert not handed.exists()
    assert list(private_tmp.iterdir()) == []
    assert stand_in.mode_file.read_text().strip() == "600"
    with memoryview(bytearray(stand_in.copy.read_bytes())) as copy:
        handed_gbs = parse_gbs(copy, handed)
        assert (handed_gbs.interface_id, handed_gbs.afu_id) == (REGION_A, AFU_2)
        assert bytes(handed_gbs.raw) == b"\x5a" * 8192
        handed_gbs.raw.release()


def test_temporary_gbs_that_cannot_be_written_is_a_programming_error(
    node: SimNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, sim_port = _port(node)
    aocx = tmp_path / "kernel.aocx"
    aocx.write_bytes(aocx_bytes(gbs_bytes(REGION_A, AFU_2, name="opencl_bsp")))
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))

    with (
        open_bitstream(aocx, BitstreamKind.AOCX, None) as bitstream,
        pytest.raises(ProgrammingError) as caught,
    ):
        FpgaconfProgrammer(_settings(node, stand_in)).program(port, bitstream)

    assert str(caught.value).startswith(
        f"cannot write the GBS of {aocx} to a temporary file for fpgaconf"
    )
    assert "No such file or directory" in str(caught.value)
    assert not stand_in.args_file.exists()
    assert sim_port.afu_id() == AFU_1


def _two_port_world(node: SimNode, tmp_path: Path, port_index: int) -> tuple[str, SimCard]:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[port_index].device()],
    )
    return state_json(bundle), card


def test_fpgaconf_is_never_asked_to_program_a_port_other_than_port_0(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, card = _two_port_world(node, tmp_path, port_index=1)
    # Like the real tool, the stand-in programs port 0 of the FME, whatever the hook wanted.
    stand_in = StandIn(tmp_path / "bin", card.ports[0].afu_file)

    result = run_hook(node, state, **_hook_env(stand_in, tmp_path))

    assert result.returncode == 1
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert error.startswith(
        "port dfl-port.1 is port 1 of dfl-fme.0, and fpgaconf always programs port 0 of an FME"
    )
    assert "FPGA_CRIHOOK_PROGRAMMER=ioctl" in error
    assert not stand_in.args_file.exists()  # refused before fpgaconf ran
    assert [port.afu_id() for port in card.ports] == [AFU_1, AFU_1]


def test_fpgaconf_programs_port_0_of_a_two_port_fme(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, card = _two_port_world(node, tmp_path, port_index=0)
    stand_in = StandIn(tmp_path / "bin", card.ports[0].afu_file)

    result = run_hook(node, state, **_hook_env(stand_in, tmp_path))

    assert result.returncode == 0, result.stderr
    assert [port.afu_id() for port in card.ports] == [AFU_2, AFU_1]


def test_a_dry_run_under_fpgaconf_refuses_a_port_other_than_port_0(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, card = _two_port_world(node, tmp_path, port_index=1)
    stand_in = StandIn(tmp_path / "bin", card.ports[0].afu_file)

    result = run_hook(node, state, FPGA_CRIHOOK_DRY_RUN="1", **_hook_env(stand_in, tmp_path))

    assert result.returncode == 1
    assert "fpgaconf always programs port 0" in result.stderr
    assert not stand_in.args_file.exists()


def test_fpgaconf_is_not_told_to_skip_the_user_clocks(node: SimNode, tmp_path: Path) -> None:
    port, sim_port = _port(node)
    document = gbs_metadata(REGION_A, AFU_2)
    document["afu-image"].update({"clock-frequency-high": 400, "clock-frequency-low": 200})
    gbs = node.store / REGION_A / f"{AFU_2}.gbs"
    gbs.parent.mkdir(parents=True)
    gbs.write_bytes(gbs_bytes(metadata=document))
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)

    with open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream:
        FpgaconfProgrammer(_settings(node, stand_in)).program(port, bitstream)

    assert "--skip-usrclk" not in stand_in.argv()
    assert stand_in.copy.read_bytes() == gbs.read_bytes()
    assert sim_port.afu_id() == AFU_2


def test_fpgaconf_timeout_is_read_from_its_environment_variable(
    node: SimNode, tmp_path: Path
) -> None:
    """FPGA_CRIHOOK_FPGACONF_TIMEOUT reaches the programmer through the CLI group."""
    state, sim_port = _hook_world(node, tmp_path, AFU_2)
    write_gbs(node, REGION_A, AFU_2)
    sleeper = tmp_path / "fpgaconf"
    sleeper.write_text("#!/bin/sh\nexec sleep 30\n")
    sleeper.chmod(0o755)
    env = node.env(
        FPGA_CRIHOOK_PROGRAMMER="fpgaconf",
        FPGA_CRIHOOK_FPGACONF=str(sleeper),
        FPGA_CRIHOOK_FPGACONF_TIMEOUT="0.5",
    )

    result = run_cli(["prestart"], env, state)

    assert result.returncode == 1
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert "did not finish within 0.5 s, so it was killed and printed nothing" in error
    assert sim_port.afu_id() == AFU_1
