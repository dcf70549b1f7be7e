"""One deadline for the whole run: every wait draws on it, and the hook fails with a
sentence before the runtime's hooks.d timeout kills it."""

import errno
import fcntl
import json
import sys
import time
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, REGION_A, RunHook, busy_limit, run_cli
from simnode import SimCard, SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook import sysfs
from fpga_crihook.commands.check import check_file, shipped_hooks_file
from fpga_crihook.commands.check.findings import Level
from fpga_crihook.deadline import DEFAULT_DEADLINE, Deadline
from fpga_crihook.devices import port_from_sysfs_dir
from fpga_crihook.errors import DeadlineError, DeviceBusyError, ExitStatus
from fpga_crihook.hook import ensure_port
from fpga_crihook.plan import Assignment
from fpga_crihook.programmers import SimProgrammer
from fpga_crihook.requests import Request
from fpga_crihook.settings import ProgrammerKind, Settings


def _card(node: SimNode) -> SimCard:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    return card


def _state(tmp_path: Path, card: SimCard) -> str:
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )
    return state_json(bundle)


def _error(stderr: str) -> str:
    return str(json.loads(stderr.splitlines()[-1])["error"])


def test_the_deadline_cuts_the_wait_for_the_fme_lock(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    card = _card(node)
    (node.root / "locks").mkdir(mode=0o700)
    with (node.root / "locks" / "dfl-fme.0.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another hook, programming for a long time
        started = time.monotonic()
        result = run_hook(
            node,
            _state(tmp_path, card),
            FPGA_CRIHOOK_DEADLINE="1.5",
            FPGA_CRIHOOK_LOCK_TIMEOUT="20",
        )
        elapsed = time.monotonic() - started

    assert result.returncode == ExitStatus.DEADLINE
    error = _error(result.stderr)
    assert error.startswith("FME dfl-fme.0 stayed locked by another hook for ")
    assert "s, all that was left of the hook's 1.5 s deadline (FPGA_CRIHOOK_DEADLINE)" in error
    assert elapsed < 10
    assert card.ports[0].afu_id() == AFU_1


def test_the_deadline_cuts_ebusy_retries(node: SimNode, monkeypatch: pytest.MonkeyPatch) -> None:
    card = _card(node)

    def always_busy(path: Path) -> bytes:
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(sysfs, "_read_raw", always_busy)
    settings = Settings(sysfs=node.sysfs, busy_timeout=30, deadline=Deadline.start(0.5))
    port = port_from_sysfs_dir(card.ports[0].sysfs_dir, settings)

    started = time.monotonic()
    with pytest.raises(DeviceBusyError) as caught:
        port.read_afu_id(settings.busy_limit)

    assert time.monotonic() - started < 5
    assert "afu_id stayed busy (EBUSY) for 0." in str(caught.value)
    assert "all that was left of the hook's 0.5 s deadline (FPGA_CRIHOOK_DEADLINE)" in str(
        caught.value
    )


def test_a_read_after_the_deadline_is_still_tried_once(node: SimNode) -> None:
    card = _card(node)
    settings = Settings(sysfs=node.sysfs, deadline=Deadline.start(1e-9))
    port = port_from_sysfs_dir(card.ports[0].sysfs_dir, settings)
    time.sleep(0.01)

    assert port.read_afu_id(settings.busy_limit) == AFU_1


def test_no_programming_begins_once_the_deadline_has_passed(node: SimNode) -> None:
    card = _card(node)
    settings = Settings(
        sysfs=node.sysfs,
        devfs=node.devfs,
        bitstreams=node.store,
        lock_dir=node.root / "locks",
        programmer=ProgrammerKind.SIM,
        deadline=Deadline.start(1e-9),
    )
    port = port_from_sysfs_dir(card.ports[0].sysfs_dir, settings)
    time.sleep(0.01)

    with pytest.raises(DeadlineError) as caught:
        ensure_port(
            Assignment(Request("1", REGION_A, AFU_2), port), SimProgrammer(busy_limit()), settings
        )

    assert str(caught.value) == (
        "the hook's 1e-09 s deadline (FPGA_CRIHOOK_DEADLINE) ran out before programming "
        "port dfl-port.0"
    )
    assert card.ports[0].afu_id() == AFU_1


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan", "inf", "86401"])
def test_a_deadline_that_is_not_a_positive_number_up_to_a_day_is_refused(
    node: SimNode, value: str
) -> None:
    result = run_cli(["prestart"], node.env(FPGA_CRIHOOK_DEADLINE=value), "{}")

    assert result.returncode == ExitStatus.SETTINGS
    assert "Invalid value for '--deadline' (env var: 'FPGA_CRIHOOK_DEADLINE')" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def _hooks_file(tmp_path: Path, timeout: int | None, env: list[str]) -> Path:
    document = json.loads(shipped_hooks_file().read_text())
    document["hook"]["path"] = sys.executable  # any executable: not what is checked here
    document["hook"]["env"] = env
    if timeout is None:
        del document["hook"]["timeout"]
    else:
        document["hook"]["timeout"] = timeout
    path = tmp_path / "hook.json"
    path.write_text(json.dumps(document))
    return path


def _timeout_findings(path: Path) -> list[tuple[Level, str]]:
    return [
        (finding.level, finding.message)
        for finding in check_file(path, Settings())
        if "FPGA_CRIHOOK_DEADLINE" in finding.message
    ]


def test_check_warns_when_the_hooks_d_timeout_is_not_above_the_deadline(tmp_path: Path) -> None:
    path = _hooks_file(tmp_path, 80, [])

    [(level, message)] = _timeout_findings(path)

    assert level is Level.WARNING
    assert message.startswith(
        f"{path}: hook.timeout 80 s is not above the hook's deadline of 80 s "
        "(FPGA_CRIHOOK_DEADLINE is not in hook.env): the runtime may kill the hook"
    )


def test_check_takes_the_deadline_the_hooks_d_env_sets(tmp_path: Path) -> None:
    assert _timeout_findings(_hooks_file(tmp_path, 60, ["FPGA_CRIHOOK_DEADLINE=50"])) == []
    [(level, message)] = _timeout_findings(_hooks_file(tmp_path, 60, ["FPGA_CRIHOOK_DEADLINE=70"]))
    assert level is Level.WARNING
    assert "deadline of 70 s (hook.env sets FPGA_CRIHOOK_DEADLINE=70)" in message


def test_check_refuses_a_deadline_the_hook_would_refuse(tmp_path: Path) -> None:
    [(level, message)] = _timeout_findings(
        _hooks_file(tmp_path, 90, ["FPGA_CRIHOOK_DEADLINE=never"])
    )
    assert level is Level.ERROR
    assert "FPGA_CRIHOOK_DEADLINE=never, which is not a number of seconds above zero" in message


def test_the_shipped_timeout_leaves_room_above_the_default_deadline() -> None:
    shipped = json.loads(shipped_hooks_file().read_text())["hook"]

    assert _timeout_findings(shipped_hooks_file()) == []
    assert shipped["timeout"] - DEFAULT_DEADLINE >= 10  # Python's start and a PR fit in it
