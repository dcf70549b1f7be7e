"""The hook's exit status names its class of failure: under crun it is all a pod's event says.

crun throws a failed hook's output away and reports only ``error executing hook
`PATH` (exit code: N)``. Each case below causes one class of failure through
the installed hook, run as a runtime runs it (state on stdin, settings in the
environment), and checks the status the docs' table gives that class, beside
the one plain line runc's users read. The operator commands keep status 1.
"""

import fcntl
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, DROP_IN, REGION_A, REPO, run_cli, run_prestart_with_a_bug
from simnode import GBS_MAGIC, SimNode, one_port_container, write_gbs

from fpga_crihook.errors import ExitStatus, HookError

UNKNOWN_AFU = "0123456789abcdef0123456789abcdef"
DOCS = REPO / "docs" / "exit-status.md"


def _asking(node: SimNode, tmp_path: Path, afu: str = AFU_2, *, annotated: bool = True) -> str:
    """A card whose port holds AFU_1, AFU_2 in the store; the state of a container asking
    for *afu* on that port."""
    write_gbs(node, REGION_A, AFU_2)
    _, state = one_port_container(
        node, tmp_path / "bundle", REGION_A, AFU_1, afu, annotated=annotated
    )
    return state


@contextmanager
def _fme_locked_by_another_hook(node: SimNode) -> Iterator[None]:
    locks = node.root / "locks"
    locks.mkdir(mode=0o700, exist_ok=True)
    with (locks / "dfl-fme.0.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield


Run = tuple[int, str]  # exit status, stderr


def _run(node: SimNode, state: str, **settings: str) -> Run:
    result = run_cli(["prestart"], node.quiet_env(**settings), state)
    return result.returncode, result.stderr


def _nothing_to_do(node: SimNode, tmp_path: Path) -> Run:
    return _run(node, _asking(node, tmp_path, annotated=False))


def _invalid_afu_id(node: SimNode, tmp_path: Path) -> Run:
    return _run(node, _asking(node, tmp_path, afu="not-an-id"))


def _no_bitstream(node: SimNode, tmp_path: Path) -> Run:
    return _run(node, _asking(node, tmp_path, afu=UNKNOWN_AFU))


def _crashed_card(node: SimNode, tmp_path: Path) -> Run:
    state = _asking(node, tmp_path)
    [interface_file] = node.sysfs.glob("class/fpga_region/region0/dfl-fme.0/**/compat_id")
    interface_file.write_text("f" * 32 + "\n")  # what a crashed card's firmware reports
    return _run(node, state)


def _a_bug(node: SimNode, tmp_path: Path) -> Run:
    result = run_prestart_with_a_bug(node.quiet_env(), _asking(node, tmp_path))
    return result.returncode, result.stderr


def _kernel_refuses_the_pr(node: SimNode, tmp_path: Path) -> Run:
    # The ioctl programmer on a simulated node: the FME "device" is a regular file (ENOTTY).
    return _run(node, _asking(node, tmp_path), FPGA_CRIHOOK_PROGRAMMER="ioctl")


def _fme_in_use(node: SimNode, tmp_path: Path) -> Run:
    state = _asking(node, tmp_path)
    with _fme_locked_by_another_hook(node):
        return _run(node, state, FPGA_CRIHOOK_LOCK_TIMEOUT="0.2")


def _unknown_programmer(node: SimNode, tmp_path: Path) -> Run:
    return _run(node, _asking(node, tmp_path), FPGA_CRIHOOK_PROGRAMMER="magic")


def _not_a_gbs(node: SimNode, tmp_path: Path) -> Run:
    state = _asking(node, tmp_path)
    gbs = node.store / REGION_A / f"{AFU_2}.gbs"
    gbs.write_bytes(b"X" * len(GBS_MAGIC) + gbs.read_bytes()[len(GBS_MAGIC) :])
    return _run(node, state)


def _deadline_during_the_wait(node: SimNode, tmp_path: Path) -> Run:
    state = _asking(node, tmp_path)
    with _fme_locked_by_another_hook(node):
        return _run(node, state, FPGA_CRIHOOK_DEADLINE="0.5", FPGA_CRIHOOK_LOCK_TIMEOUT="20")


# One cause per status the hook can exit with; the status a cause must give is its key.
CAUSES: dict[ExitStatus, tuple[Callable[[SimNode, Path], Run], str]] = {
    ExitStatus.SUCCESS: (_nothing_to_do, ""),
    ExitStatus.CONTAINER_INPUT: (_invalid_afu_id, "FPGA_AFU_1: 'not-an-id' is not"),
    ExitStatus.NO_BITSTREAM: (_no_bitstream, f"no bitstream for region {REGION_A}"),
    ExitStatus.DEVICE: (_crashed_card, "the card's firmware has crashed"),
    ExitStatus.INTERNAL: (_a_bug, "internal error: ZeroDivisionError"),
    ExitStatus.PROGRAMMING: (_kernel_refuses_the_pr, "ENOTTY"),
    ExitStatus.DEVICE_BUSY: (_fme_in_use, "FME dfl-fme.0 stayed locked by another hook for 0.2 s"),
    ExitStatus.SETTINGS: (_unknown_programmer, "Invalid value for '--programmer'"),
    ExitStatus.BITSTREAM_REFUSED: (_not_a_gbs, "is not a GBS file: wrong magic bytes"),
    ExitStatus.DEADLINE: (_deadline_during_the_wait, "the hook's 0.5 s deadline"),
}
HOOK_STATUSES = [status for status in ExitStatus if status is not ExitStatus.NOT_CLASSIFIED]


@pytest.mark.parametrize("status", HOOK_STATUSES, ids=[status.name for status in HOOK_STATUSES])
def test_each_class_of_failure_exits_with_its_own_status_and_one_plain_line(
    node: SimNode, tmp_path: Path, status: ExitStatus
) -> None:
    cause, words = CAUSES[status]

    returncode, stderr = cause(node, tmp_path)

    assert returncode == status, stderr
    if status is ExitStatus.SUCCESS:
        assert stderr == ""
        return
    [line] = stderr.splitlines()  # what runc hands on: unchanged
    assert line.startswith("fpga-crihook: ")
    assert words in line


def test_no_two_classes_share_a_status_and_none_reaches_the_shells_range() -> None:
    numbers = [status.value for status in ExitStatus]  # an alias would not be listed
    assert len(numbers) == len(ExitStatus.__members__)
    assert max(numbers) < 126  # 126 and up: the shell's "cannot execute", signals
    assert int(ExitStatus.SUCCESS) == 0  # what every runtime takes for success


def _subclasses(cls: type[HookError]) -> list[type[HookError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _subclasses(child))]


def test_every_error_class_the_hook_raises_has_a_failure_status() -> None:
    failing = set(ExitStatus) - {ExitStatus.SUCCESS, ExitStatus.NOT_CLASSIFIED}
    statuses = {cls: cls.exit_status for cls in _subclasses(HookError)}
    assert set(statuses.values()) <= failing
    # Every failure status but the internal one has a class of its own.
    assert failing - {ExitStatus.INTERNAL} <= set(statuses.values())


def _docs_table() -> dict[int, str]:
    """``| status | meaning | ... |`` rows of the docs' exit-status table."""
    rows = re.findall(r"^\| (\d+) \| ([^|]+?) \|", DOCS.read_text(encoding="utf-8"), re.M)
    return {int(number): meaning for number, meaning in rows}


def test_the_docs_table_is_the_codes() -> None:
    assert _docs_table() == {status.value: status.meaning for status in ExitStatus}


def test_prestart_help_shows_the_table() -> None:
    result = run_cli(["prestart", "--help"], {})

    assert result.returncode == 0
    shown = " ".join(result.stdout.split())
    for status in ExitStatus:
        assert f"{status.value} {status.meaning}" in shown


@pytest.mark.parametrize(
    ("arguments", "status"),
    [
        (["--programmer", "magic", "prestart"], ExitStatus.SETTINGS),
        (["--programmer", "magic", "createRuntime", "--cdi"], ExitStatus.SETTINGS),
        (["prestart", "--no-such-option"], ExitStatus.SETTINGS),
        (["--programmer", "magic", "devices"], 1),
        # An option's value that reads like the hook is no hook run.
        (["--fpgaconf", "prestart", "--programmer", "magic", "devices"], 1),
    ],
)
def test_a_bad_option_is_the_hooks_settings_status_and_an_operator_commands_1(
    node: SimNode, arguments: list[str], status: int
) -> None:
    result = run_cli(arguments, node.quiet_env(), "{}")

    assert result.returncode == status
    [line] = result.stderr.splitlines()
    assert line.startswith("fpga-crihook: ")


def test_the_drop_in_exits_with_the_settings_status_for_a_bad_config_file(
    node: SimNode,
) -> None:
    node.config_file.write_text('programmer = "magic"\n')
    node.config_file.chmod(0o600)

    result = run_cli([], {"FPGA_CRIHOOK_CONFIG": str(node.config_file)}, "{}", DROP_IN)

    assert result.returncode == ExitStatus.SETTINGS
    assert "'magic' is not one of" in result.stderr


@pytest.mark.parametrize(("command", "status"), [("prestart", ExitStatus.INTERNAL), ("devices", 1)])
def test_a_bug_before_the_command_runs_is_one_line_and_an_internal_error(
    node: SimNode, command: str, status: int
) -> None:
    """A bug in setting up the run (here: logging) is still no traceback."""
    code = (
        "import fpga_crihook.logs as logs\n"
        "logs.configure = lambda *_, **__: 1 / 0\n"
        "from fpga_crihook.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, command],
        input="{}",
        env=node.quiet_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert result.returncode == status
    assert result.stderr == "fpga-crihook: internal error: ZeroDivisionError: division by zero\n"


@pytest.mark.parametrize(
    "arguments",
    [["gbs-info", "/nonexistent.gbs"], ["program", "--port", "dfl-port.9", "/nonexistent.gbs"]],
)
def test_operator_commands_keep_status_1(node: SimNode, arguments: list[str]) -> None:
    result = run_cli(arguments, node.quiet_env())

    assert result.returncode == 1
    assert result.stderr.startswith("fpga-crihook: ")
