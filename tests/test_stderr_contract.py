"""What the hook leaves on stderr, the one output runc shows: nothing on success, one
plain line on failure, and events only for someone who asks for them.

Runs use ``SimNode.quiet_env()``, the settings a hooks.d file gives: no log
level or format, so stderr is as CRI-O sees it.
"""

import json
import os
import pty
import resource
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from helpers import AFU_1, AFU_2, HOOK, REGION_A, run_cli, run_prestart_with_a_bug
from simnode import SimNode, SimPort, add_card, state_json, write_bundle, write_gbs

from fpga_crihook.errors import ExitStatus

HUNG = 30  # seconds: a run that takes this long is a hung run


def _asking(node: SimNode, tmp_path: Path, afu: str = AFU_2) -> tuple[SimPort, str]:
    """A port holding AFU_1, AFU_2 in the store, and the state of a container asking for *afu*."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=["SECRET=hunter2", f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={afu}"],
        devices=[card.ports[0].device()],
    )
    return card.ports[0], state_json(bundle)


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_success_leaves_stderr_empty(node: SimNode, tmp_path: Path) -> None:
    port, state = _asking(node, tmp_path)

    programmed = run_cli(["prestart"], node.quiet_env(), state)
    skipped = run_cli(["prestart"], node.quiet_env(), state)

    assert (programmed.returncode, programmed.stderr, programmed.stdout) == (0, "", "")
    assert (skipped.returncode, skipped.stderr, skipped.stdout) == (0, "", "")
    assert port.afu_id() == AFU_2


def _bad_setting(node: SimNode, tmp_path: Path) -> tuple[dict[str, str], str]:
    return node.quiet_env(FPGA_CRIHOOK_PROGRAMMER="magic"), "{}"


def _sim_on_real_sysfs(node: SimNode, tmp_path: Path) -> tuple[dict[str, str], str]:
    return node.quiet_env(FPGA_CRIHOOK_SYSFS="/sys"), "{}"


def _unreadable_state(node: SimNode, tmp_path: Path) -> tuple[dict[str, str], str]:
    return node.quiet_env(), '{"ociVersion": '


def _invalid_request(node: SimNode, tmp_path: Path) -> tuple[dict[str, str], str]:
    return node.quiet_env(), _asking(node, tmp_path, afu="../../x")[1]


def _no_fpga_port(node: SimNode, tmp_path: Path) -> tuple[dict[str, str], str]:
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}],
    )
    return node.quiet_env(), state_json(bundle)


def _missing_bitstream(node: SimNode, tmp_path: Path) -> tuple[dict[str, str], str]:
    return node.quiet_env(), _asking(node, tmp_path, afu="0123456789abcdef0123456789abcdef")[1]


def _programming_fails(node: SimNode, tmp_path: Path) -> tuple[dict[str, str], str]:
    # The ioctl programmer on a simulated node: the FME "device" is a regular file.
    return node.quiet_env(FPGA_CRIHOOK_PROGRAMMER="ioctl"), _asking(node, tmp_path)[1]


def _fme_stays_locked(node: SimNode, tmp_path: Path) -> tuple[dict[str, str], str]:
    locks = tmp_path / "not-a-directory"
    locks.write_text("")
    return node.quiet_env(FPGA_CRIHOOK_LOCK_DIR=str(locks)), _asking(node, tmp_path)[1]


Failure = Callable[[SimNode, Path], tuple[dict[str, str], str]]
FAILURES: dict[str, tuple[Failure, str, ExitStatus]] = {
    "bad setting": (_bad_setting, "Invalid value for '--programmer'", ExitStatus.SETTINGS),
    "settings refused": (
        _sim_on_real_sysfs,
        "the sim programmer only works on a simulated",
        ExitStatus.SETTINGS,
    ),
    "unreadable state": (_unreadable_state, "container state on stdin", ExitStatus.CONTAINER_INPUT),
    "invalid request": (_invalid_request, "FPGA_AFU_1", ExitStatus.CONTAINER_INPUT),
    "no FPGA port": (
        _no_fpga_port,
        "none of its linux.devices is an FPGA port",
        ExitStatus.CONTAINER_INPUT,
    ),
    "missing bitstream": (_missing_bitstream, "no bitstream for region", ExitStatus.NO_BITSTREAM),
    "programming fails": (_programming_fails, "ENOTTY", ExitStatus.PROGRAMMING),
    "lock": (_fme_stays_locked, "cannot use the lock directory", ExitStatus.SETTINGS),
}


@pytest.mark.parametrize("family", FAILURES)
def test_a_failure_is_one_plain_line_and_nothing_else(
    node: SimNode, tmp_path: Path, family: str
) -> None:
    make, words, status = FAILURES[family]
    env, state = make(node, tmp_path)

    result = run_cli(["prestart"], env, state)

    assert result.returncode == status
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("fpga-crihook: ")
    assert words in line
    assert "{" not in line
    assert "hunter2" not in result.stderr
    assert result.stderr.endswith("\n")


def test_an_internal_error_is_one_plain_line_too(node: SimNode, tmp_path: Path) -> None:
    _, state = _asking(node, tmp_path)
    result = run_prestart_with_a_bug(node.quiet_env(), state)
    assert result.returncode == ExitStatus.INTERNAL
    assert result.stderr == ("fpga-crihook: internal error: ZeroDivisionError: division by zero\n")


def test_the_failure_event_still_goes_to_the_log_file(node: SimNode, tmp_path: Path) -> None:
    _, state = _asking(node, tmp_path, afu="0123456789abcdef0123456789abcdef")
    log_file = tmp_path / "hook.log"

    result = run_cli(["prestart"], node.quiet_env(FPGA_CRIHOOK_LOG_FILE=str(log_file)), state)

    assert result.returncode == ExitStatus.NO_BITSTREAM
    events = _events(log_file.read_text())
    assert [event["event"] for event in events] == ["hook started", "prestart failed"]
    assert events[-1]["error"] == result.stderr.removeprefix("fpga-crihook: ").rstrip("\n")


@pytest.mark.parametrize(
    ("how", "setting"),
    [
        ("level from the environment", {"FPGA_CRIHOOK_LOG_LEVEL": "info"}),
        ("format from the environment", {"FPGA_CRIHOOK_LOG_FORMAT": "json"}),
        ("level as an option", {"--log-level": "info"}),
    ],
)
def test_an_explicit_log_setting_asks_for_the_events_on_stderr(
    node: SimNode, tmp_path: Path, how: str, setting: dict[str, str]
) -> None:
    _, state = _asking(node, tmp_path, afu="0123456789abcdef0123456789abcdef")
    options = [
        part for key, value in setting.items() if key.startswith("-") for part in (key, value)
    ]
    env = node.quiet_env(**{key: value for key, value in setting.items() if key.isupper()})

    result = run_cli([*options, "prestart"], env, state)

    assert result.returncode == ExitStatus.NO_BITSTREAM
    events = _events(result.stderr)  # every line JSON: no plain line after the events
    assert [event["event"] for event in events] == ["hook started", "prestart failed"]
    assert "no bitstream for region" in events[-1]["error"]


def test_on_a_terminal_an_operator_command_shows_console_lines(
    node: SimNode, tmp_path: Path
) -> None:
    port, _ = _asking(node, tmp_path)
    gbs = node.store / REGION_A / f"{AFU_2}.gbs"
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(
            [str(HOOK), "program", "--port", port.name, str(gbs)],
            env=node.quiet_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            check=False,
            timeout=HUNG,
        )
        os.close(terminal)
        shown = _read_all(controller)
    finally:
        os.close(controller)
    assert process.returncode == 0
    assert "port programmed" in shown
    assert not shown.lstrip().startswith("{")  # console lines, not JSON
    assert f"{port.name} programmed with" in process.stdout.decode()


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


# The log file ------------------------------------------------------------------------------


def test_a_fifo_as_log_file_neither_hangs_nor_fails_the_hook(node: SimNode, tmp_path: Path) -> None:
    port, state = _asking(node, tmp_path)
    fifo = tmp_path / "hook.log"
    os.mkfifo(fifo)  # nobody reads it: a blocking open would wait forever

    result = run_cli(["prestart"], node.env(FPGA_CRIHOOK_LOG_FILE=str(fifo)), state, timeout=HUNG)

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    warning, *_ = _events(result.stderr)
    assert warning["event"] == "cannot open the log file: going on without it"
    assert warning["log_file"] == str(fifo)


@pytest.mark.parametrize("kind", ["symlink", "character device", "directory"])
def test_a_log_file_that_is_no_regular_file_is_refused_with_a_warning(
    node: SimNode, tmp_path: Path, kind: str
) -> None:
    port, state = _asking(node, tmp_path)
    target = tmp_path / "elsewhere"
    target.write_text("")
    log_file = {
        "symlink": tmp_path / "hook.log",
        "character device": Path("/dev/full"),
        "directory": tmp_path,
    }[kind]
    if kind == "symlink":
        log_file.symlink_to(target)

    result = run_cli(
        ["prestart"], node.env(FPGA_CRIHOOK_LOG_FILE=str(log_file)), state, timeout=HUNG
    )

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    warning, *rest = _events(result.stderr)
    assert warning["event"] == "cannot open the log file: going on without it"
    assert rest[-1]["event"] == "port programmed"
    assert target.read_text() == ""


def test_a_log_file_that_fails_halfway_costs_a_warning_not_the_container(
    node: SimNode, tmp_path: Path
) -> None:
    port, state = _asking(node, tmp_path)
    log_file = tmp_path / "hook.log"
    log_file.write_text("x" * 4096)

    def limit_file_size() -> None:  # a full disk, for this process: EFBIG past 4 KiB
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = run_cli(
        ["prestart"],
        node.env(FPGA_CRIHOOK_LOG_FILE=str(log_file)),
        state,
        timeout=HUNG,
        preexec=limit_file_size,
    )

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    events = _events(result.stderr)
    warnings = [event for event in events if event["level"] == "warning"]
    assert [(event["event"], event["reason"]) for event in warnings] == [
        ("cannot write the log file: going on without it", "File too large")
    ]
    assert events[-1]["event"] == "port programmed"


# A broken stderr ---------------------------------------------------------------------------


def _stderr_closed() -> tuple[dict[str, Any], Callable[[], None]]:
    return {"preexec_fn": lambda: os.close(2)}, lambda: None


def _stderr_without_reader() -> tuple[dict[str, Any], Callable[[], None]]:
    reader, writer = os.pipe()
    os.close(reader)  # every write gets EPIPE
    return {"stderr": writer}, lambda: os.close(writer)


def _stderr_full() -> tuple[dict[str, Any], Callable[[], None]]:
    full: IO[bytes] = open("/dev/full", "wb")  # noqa: SIM115 (closed by the test)
    return {"stderr": full}, full.close


BROKEN = {"closed": _stderr_closed, "EPIPE": _stderr_without_reader, "ENOSPC": _stderr_full}


@pytest.mark.parametrize("events_on_stderr", [False, True], ids=["quiet", "events"])
@pytest.mark.parametrize("broken", BROKEN)
@pytest.mark.parametrize("fails", [False, True], ids=["success", "failure"])
def test_a_broken_stderr_never_changes_the_exit_status(
    node: SimNode, tmp_path: Path, broken: str, events_on_stderr: bool, fails: bool
) -> None:
    port, state = _asking(
        node, tmp_path, afu="0123456789abcdef0123456789abcdef" if fails else AFU_2
    )
    log_file = tmp_path / "hook.log"
    env = (node.env if events_on_stderr else node.quiet_env)(FPGA_CRIHOOK_LOG_FILE=str(log_file))
    stderr, close = BROKEN[broken]()
    try:
        result = subprocess.run(
            [str(HOOK), "prestart"],
            input=state.encode(),
            env=env,
            stdout=subprocess.DEVNULL,
            check=False,
            timeout=HUNG,
            **stderr,
        )
    finally:
        close()
    assert result.returncode == (ExitStatus.NO_BITSTREAM if fails else 0)
    assert port.afu_id() == (AFU_1 if fails else AFU_2)
    # With stderr closed, nothing meant for it landed in the next file opened.
    events = _events(log_file.read_text())
    assert events[-1]["event"] == ("prestart failed" if fails else "port programmed")
