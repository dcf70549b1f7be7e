"""fpgaconf: the PCI address and file handed to OPAE's tool, what its failures look like,
and that it never programs a port the hook no longer holds the lock of.

A stand-in ``fpgaconf`` shell script refuses a file the way OPAE's does (the
path must be canonical and a regular file), records its arguments, copies
the file it was given, and (unless told otherwise) emulates programming by
writing the simulated port's ``afu_id``.
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aocxfiles import aocx_bytes
from helpers import AFU_1, AFU_2, AFU_3, HOOK, REGION_A, LockOf, RunHook, run_cli
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

from fpga_crihook.bitstream import open_bitstream, parse_gbs
from fpga_crihook.deadline import Deadline
from fpga_crihook.devices import Port, port_from_sysfs_dir
from fpga_crihook.errors import DeadlineError, ExitStatus, ProgrammingError, SettingsError
from fpga_crihook.fpgaconf import FpgaconfProgrammer
from fpga_crihook.settings import ProgrammerKind, Settings
from fpga_crihook.store import BitstreamKind


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
            "PATH=/usr/bin:/bin\n"  # its own tools, whatever PATH found it
            f"printf '%s\\n' \"$@\" > {self.args_file}\n"
            'for last in "$@"; do :; done\n'
            # OPAE: canonicalize_file_name(), then no symlink and a regular file, else refused.
            'if [ "$(realpath -e -- "$last")" != "$last" ] || [ ! -f "$last" ]; then\n'
            '    echo "Error locating GBS file specified" >&2; exit 1\n'
            "fi\n" + before + f'cp "$last" {self.copy}\n'
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


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_fpgaconf_gets_the_pci_address_in_hex_and_a_private_copy_of_the_validated_gbs(
    node: SimNode, tmp_path: Path, lock_of: LockOf
) -> None:
    port, sim_port = _port(node, pci_address="0001:af:1f.3")
    gbs = write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)

    with open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream:
        lock = lock_of(port)
        FpgaconfProgrammer(_settings(node, stand_in)).program(port, bitstream, lock)

    handed = lock.path.with_name("dfl-fme.0.gbs")
    assert stand_in.argv() == [
        "--segment",
        "0x0001",
        "-B",
        "0xaf",
        "-D",
        "0x1f",
        "-F",
        "0x3",
        str(handed),
    ]
    assert stand_in.copy.read_bytes() == gbs.read_bytes()
    assert stand_in.mode_file.read_text().strip() == "600"
    assert not handed.exists()
    assert sim_port.afu_id() == AFU_2


def test_failing_fpgaconf_error_names_exit_status_and_output(
    node: SimNode, tmp_path: Path, lock_of: LockOf
) -> None:
    port, sim_port = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file, exit_status=3)

    with (
        open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(ProgrammingError) as caught,
    ):
        FpgaconfProgrammer(_settings(node, stand_in)).program(port, bitstream, lock_of(port))

    message = str(caught.value)
    assert f"fpgaconf programming port dfl-port.0 with {gbs} failed with exit status 3" in message
    assert message.endswith("Reading bitstream | Error writing bitstream to FPGA: busy")
    assert "\n" not in message
    assert sim_port.afu_id() == AFU_1


def test_fpgaconf_output_in_the_error_is_bounded_to_the_last_lines(
    node: SimNode, tmp_path: Path, lock_of: LockOf
) -> None:
    port, _ = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    chatty = _script(
        tmp_path / "fpgaconf", 'for i in $(seq 1 5000); do echo "line $i"; done\nexit 1\n'
    )
    settings = Settings(sysfs=node.sysfs, fpgaconf=str(chatty))

    with (
        open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(ProgrammingError) as caught,
    ):
        FpgaconfProgrammer(settings).program(port, bitstream, lock_of(port))

    assert str(caught.value).endswith(": line 4996 | line 4997 | line 4998 | line 4999 | line 5000")


def test_fpgaconf_that_hangs_is_killed_after_the_timeout(
    node: SimNode, tmp_path: Path, lock_of: LockOf
) -> None:
    port, _ = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    sleeper = _script(tmp_path / "fpgaconf", "echo starting\nexec sleep 30\n")
    settings = Settings(sysfs=node.sysfs, fpgaconf=str(sleeper), fpgaconf_timeout=0.5)

    started = time.monotonic()
    with (
        open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(
            ProgrammingError, match=r"did not finish within 0\.5 s, so it was killed: starting"
        ),
    ):
        FpgaconfProgrammer(settings).program(port, bitstream, lock_of(port))
    assert time.monotonic() - started < 10


def test_fpgaconf_gets_no_more_time_than_the_deadline_leaves(
    node: SimNode, tmp_path: Path, lock_of: LockOf
) -> None:
    port, _ = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    sleeper = _script(tmp_path / "fpgaconf", "exec sleep 30\n")
    settings = Settings(
        sysfs=node.sysfs, fpgaconf=str(sleeper), fpgaconf_timeout=60, deadline=Deadline.start(1)
    )

    started = time.monotonic()
    with (
        open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(DeadlineError) as caught,
    ):
        FpgaconfProgrammer(settings).program(port, bitstream, lock_of(port))

    assert time.monotonic() - started < 10
    assert "all that was left of the hook's 1 s deadline (FPGA_CRIHOOK_DEADLINE), so it was " in (
        str(caught.value)
    )


def test_what_fpgaconf_leaves_running_is_killed_with_its_process_group(
    node: SimNode, tmp_path: Path, lock_of: LockOf
) -> None:
    port, sim_port = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    late = tmp_path / "late"
    leaves_a_writer = _script(
        tmp_path / "fpgaconf", f"(sleep 1; echo {AFU_3} > {sim_port.afu_file}; touch {late}) &\n"
    )
    settings = Settings(sysfs=node.sysfs, fpgaconf=str(leaves_a_writer))

    with open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream:
        FpgaconfProgrammer(settings).program(port, bitstream, lock_of(port))
    time.sleep(2)

    assert not late.exists()
    assert sim_port.afu_id() == AFU_1


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
    node: SimNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lock_of: LockOf
) -> None:
    port, sim_port = _port(node)
    gbs = write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)
    monkeypatch.setenv("PATH", str(stand_in.path.parent))

    with open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream:
        FpgaconfProgrammer(Settings(sysfs=node.sysfs)).program(port, bitstream, lock_of(port))

    assert stand_in.copy.read_bytes() == gbs.read_bytes()


def _hook_world(node: SimNode, tmp_path: Path, request_afu: str) -> tuple[str, SimPort]:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={request_afu}"],
        devices=[card.ports[0].device()],
    )
    return state_json(bundle), card.ports[0]


def _hook_env(stand_in: StandIn | Path) -> dict[str, str]:
    path = stand_in.path if isinstance(stand_in, StandIn) else stand_in
    return {"FPGA_CRIHOOK_PROGRAMMER": "fpgaconf", "FPGA_CRIHOOK_FPGACONF": str(path)}


def test_hook_programs_through_fpgaconf_and_verifies(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, sim_port = _hook_world(node, tmp_path, AFU_2)
    gbs = write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)

    result = run_hook(node, state, **_hook_env(stand_in))

    assert result.returncode == 0, result.stderr
    assert sim_port.afu_id() == AFU_2
    assert stand_in.argv()[-1] == str(node.root / "locks" / "dfl-fme.0.gbs")
    assert stand_in.copy.read_bytes() == gbs.read_bytes()
    assert sorted(path.name for path in (node.root / "locks").iterdir()) == ["dfl-fme.0.lock"]


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

    result = run_hook(node, state, **_hook_env(stand_in))

    assert result.returncode == 0, result.stderr
    assert gbs.read_bytes() == other.read_bytes()  # the overwrite did happen
    assert stand_in.copy.read_bytes() == validated


def test_fpgaconf_that_exits_0_without_programming_is_caught_by_verification(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, sim_port = _hook_world(node, tmp_path, AFU_2)
    write_gbs(node, REGION_A, AFU_2)
    stand_in = StandIn(tmp_path / "bin", afu_file=None)

    result = run_hook(node, state, **_hook_env(stand_in))

    assert result.returncode == ExitStatus.PROGRAMMING
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

    result = run_hook(node, state, **_hook_env(tmp_path / "missing"))

    assert result.returncode == ExitStatus.SETTINGS
    assert "which is not an executable file" in json.loads(result.stderr.splitlines()[-1])["error"]
    assert sim_port.afu_id() == AFU_1


def test_aocx_through_fpgaconf_gets_its_embedded_gbs_in_a_private_file_removed_afterwards(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, sim_port = _hook_world(node, tmp_path, AFU_3)
    embedded = gbs_bytes(REGION_A, AFU_2, raw=b"\x5a" * 8192, name="opencl_bsp")
    aocx = node.store / REGION_A / f"{AFU_3}.aocx"
    aocx.parent.mkdir(parents=True)
    aocx.write_bytes(aocx_bytes(embedded))
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)

    result = run_hook(node, state, **_hook_env(stand_in))

    assert result.returncode == 0, result.stderr
    assert sim_port.afu_id() == AFU_2  # the embedded GBS's accelerator-type-uuid
    handed = Path(stand_in.argv()[-1])
    assert handed == node.root / "locks" / "dfl-fme.0.gbs"
    assert not handed.exists()
    assert stand_in.mode_file.read_text().strip() == "600"
    assert (node.root / "locks").stat().st_mode & 0o777 == 0o700
    assert stand_in.copy.read_bytes() == embedded
    with memoryview(bytearray(stand_in.copy.read_bytes())) as copy:
        handed_gbs = parse_gbs(copy, handed)
        assert (handed_gbs.interface_id, handed_gbs.afu_id) == (REGION_A, AFU_2)
        handed_gbs.raw.release()


def test_gbs_file_that_cannot_be_written_is_a_programming_error(
    node: SimNode, tmp_path: Path, lock_of: LockOf
) -> None:
    port, sim_port = _port(node)
    aocx = tmp_path / "kernel.aocx"
    aocx.write_bytes(aocx_bytes(gbs_bytes(REGION_A, AFU_2, name="opencl_bsp")))
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)
    lock = lock_of(port)
    in_the_way = lock.path.with_name("dfl-fme.0.gbs")
    in_the_way.mkdir()

    with (
        open_bitstream(aocx, BitstreamKind.AOCX, None) as bitstream,
        pytest.raises(ProgrammingError) as caught,
    ):
        FpgaconfProgrammer(_settings(node, stand_in)).program(port, bitstream, lock)

    assert str(caught.value).startswith(
        f"cannot write the GBS of {aocx} to {in_the_way} for fpgaconf: Is a directory"
    )
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

    result = run_hook(node, state, **_hook_env(stand_in))

    assert result.returncode == ExitStatus.SETTINGS
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

    result = run_hook(node, state, **_hook_env(stand_in))

    assert result.returncode == 0, result.stderr
    assert [port.afu_id() for port in card.ports] == [AFU_2, AFU_1]


def test_a_dry_run_under_fpgaconf_refuses_a_port_other_than_port_0(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, card = _two_port_world(node, tmp_path, port_index=1)
    stand_in = StandIn(tmp_path / "bin", card.ports[0].afu_file)

    result = run_hook(node, state, FPGA_CRIHOOK_DRY_RUN="1", **_hook_env(stand_in))

    assert result.returncode == ExitStatus.SETTINGS
    assert "fpgaconf always programs port 0" in result.stderr
    assert not stand_in.args_file.exists()


def test_fpgaconf_is_not_told_to_skip_the_user_clocks(
    node: SimNode, tmp_path: Path, lock_of: LockOf
) -> None:
    port, sim_port = _port(node)
    document = gbs_metadata(REGION_A, AFU_2)
    document["afu-image"].update({"clock-frequency-high": 400, "clock-frequency-low": 200})
    gbs = node.store / REGION_A / f"{AFU_2}.gbs"
    gbs.parent.mkdir(parents=True)
    gbs.write_bytes(gbs_bytes(metadata=document))
    stand_in = StandIn(tmp_path / "bin", sim_port.afu_file)

    with open_bitstream(gbs, BitstreamKind.GBS, node.store) as bitstream:
        FpgaconfProgrammer(_settings(node, stand_in)).program(port, bitstream, lock_of(port))

    assert "--skip-usrclk" not in stand_in.argv()
    assert stand_in.copy.read_bytes() == gbs.read_bytes()
    assert sim_port.afu_id() == AFU_2


def test_fpgaconf_timeout_is_read_from_its_environment_variable(
    node: SimNode, tmp_path: Path
) -> None:
    """FPGA_CRIHOOK_FPGACONF_TIMEOUT reaches the programmer through the CLI group."""
    state, sim_port = _hook_world(node, tmp_path, AFU_2)
    write_gbs(node, REGION_A, AFU_2)
    sleeper = _script(tmp_path / "fpgaconf", "exec sleep 30\n")
    env = node.env(**_hook_env(sleeper), FPGA_CRIHOOK_FPGACONF_TIMEOUT="0.5")

    result = run_cli(["prestart"], env, state)

    assert result.returncode == ExitStatus.PROGRAMMING
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert "did not finish within 0.5 s, so it was killed and printed nothing" in error
    assert sim_port.afu_id() == AFU_1


# --- a hook killed while fpgaconf runs (the runtime's hooks.d timeout) ----------------------

# A stand-in that reads the AFU ID out of the GBS it is given, says so in a log, takes
# as long as DELAYS says for that AFU, then programs it into the simulated port.
_SLOW_FPGACONF = """#!{python} -I
import json, os, struct, sys, time
DELAYS = {delays!r}
data = open(sys.argv[-1], "rb").read()
(length,) = struct.unpack_from("<I", data, 16)
image = json.loads(data[20 : 20 + length])["afu-image"]
afu = image["accelerator-clusters"][0]["accelerator-type-uuid"].replace("-", "")
{grandchild}with open({log!r}, "a") as log:
    log.write(f"started {{afu}}\\n")
time.sleep(DELAYS.get(afu, 0))
with open({afu_file!r} + ".new", "w") as new:
    new.write(afu + "\\n")
os.replace({afu_file!r} + ".new", {afu_file!r})
with open({log!r}, "a") as log:
    log.write(f"programmed {{afu}}\\n")
"""

# Started by the stand-in before it says "started" (a hook killed at once must find it there):
# out of its process group, holding whatever the stand-in inherited.
_GRANDCHILD = """if os.fork() == 0:
    os.setsid()
    time.sleep({seconds})
    with open({log!r}, "a") as log:
        log.write("grandchild done\\n")
    os._exit(0)
"""


def _slow_stand_in(
    tmp_path: Path, sim_port: SimPort, delays: dict[str, float], grandchild: float = 0
) -> tuple[Path, Path]:
    log = tmp_path / "fpgaconf.log"
    path = tmp_path / "bin" / "fpgaconf"
    path.parent.mkdir()
    path.write_text(
        _SLOW_FPGACONF.format(
            python=sys.executable,
            delays=delays,
            log=str(log),
            afu_file=str(sim_port.afu_file),
            grandchild=_GRANDCHILD.format(seconds=grandchild, log=str(log)) if grandchild else "",
        )
    )
    path.chmod(0o755)
    return path, log


def _pod(tmp_path: Path, port: SimPort, name: str, afu: str) -> Path:
    bundle = write_bundle(
        tmp_path / name,
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={afu}"],
        devices=[port.device()],
    )
    state = tmp_path / f"{name}.json"
    state.write_text(state_json(bundle, container_id=name))
    return state


def _start_hook(node: SimNode, state: Path, fpgaconf: Path) -> "subprocess.Popen[bytes]":
    with state.open("rb") as stdin:
        return subprocess.Popen(
            [str(HOOK), "prestart"],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=node.env(**_hook_env(fpgaconf)),
        )


def _wait_for_line(log: Path, line: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and line in log.read_text().splitlines()):
        assert time.monotonic() < deadline, f"no {line!r} in {log}"
        time.sleep(0.02)


def _kill(hook: "subprocess.Popen[bytes]") -> None:
    hook.send_signal(signal.SIGKILL)  # what runc does when the hooks.d timeout expires
    hook.wait()


def test_a_hook_killed_while_fpgaconf_runs_leaves_no_fpgaconf_to_program_after_the_next_pod(
    node: SimNode, tmp_path: Path
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    write_gbs(node, REGION_A, AFU_3)
    fpgaconf, log = _slow_stand_in(tmp_path, card.ports[0], {AFU_2: 3.0})
    first = _start_hook(node, _pod(tmp_path, card.ports[0], "first", AFU_2), fpgaconf)
    try:
        _wait_for_line(log, f"started {AFU_2}")
    finally:
        _kill(first)
    started = time.monotonic()

    second = run_cli(
        ["prestart"],
        node.env(**_hook_env(fpgaconf)),
        _pod(tmp_path, card.ports[0], "second", AFU_3).read_text(),
    )

    assert second.returncode == 0, second.stderr
    assert card.ports[0].afu_id() == AFU_3
    time.sleep(max(0.0, 4.0 - (time.monotonic() - started)))  # past the first one's 3 s
    assert card.ports[0].afu_id() == AFU_3
    assert f"programmed {AFU_2}" not in log.read_text().splitlines()


def test_what_fpgaconf_started_keeps_the_fme_locked_after_the_hook_is_killed(
    node: SimNode, tmp_path: Path
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    fpgaconf, log = _slow_stand_in(tmp_path, card.ports[0], {AFU_2: 30.0}, grandchild=2.0)
    hook = _start_hook(node, _pod(tmp_path, card.ports[0], "first", AFU_2), fpgaconf)
    try:
        _wait_for_line(log, f"started {AFU_2}")
    finally:
        _kill(hook)
    lock_file = node.root / "locks" / "dfl-fme.0.lock"

    with lock_file.open("rb") as lock:
        with pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _wait_for_line(log, "grandchild done")
        _lock_within(lock.fileno(), 5.0)  # free once the last holder is gone

    assert card.ports[0].afu_id() == AFU_1


def _lock_within(fd: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            assert time.monotonic() < deadline, "the FME lock stayed held"
            time.sleep(0.02)
        else:
            return
