"""Hooks started at once for ports of one FME: one programs, the others wait and skip.

Each test starts real ``fpga-crihook prestart`` processes (sim programmer)
sharing one log file, as CRI-O would when several pods land on a node at once.
"""

import collections
import contextlib
import fcntl
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers import AFU_1, AFU_2, AFU_3, HOOK, REGION_A, LockOf, RunHook, busy_limit
from simnode import SimCard, SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook.bitstream import open_bitstream
from fpga_crihook.devices import port_from_sysfs_dir
from fpga_crihook.errors import ExitStatus, HookError
from fpga_crihook.programmers import SimProgrammer
from fpga_crihook.settings import Settings
from fpga_crihook.store import BitstreamKind

PROGRAMMED = "port programmed"
SKIPPED = "port already holds the AFU: skipped"
WAITING = "waiting for another hook to finish with the FME"
GOT_LOCK = "got the FME lock"


def _four_port_card(node: SimNode) -> SimCard:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1] * 4)
    for afu in (AFU_2, AFU_3):
        write_gbs(node, REGION_A, afu, raw=os.urandom(1 << 20))
    return card


def _wanted(port_index: int) -> str:
    return AFU_2 if port_index % 2 == 0 else AFU_3


def _start_containers(
    node: SimNode, card: SimCard, tmp_path: Path, count: int, **extra: str
) -> list[subprocess.Popen[bytes]]:
    """Start *count* hooks at once; container i asks for its AFU on port i % 4."""
    states = []
    for number in range(count):
        port = number % len(card.ports)
        bundle = write_bundle(
            tmp_path / f"bundle{number}",
            env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={_wanted(port)}"],
            devices=[card.ports[port].device()],
        )
        state = tmp_path / f"state{number}.json"
        state.write_text(state_json(bundle, container_id=f"container{number}"))
        states.append(state)
    env = node.env(FPGA_CRIHOOK_LOG_FILE=str(tmp_path / "hooks.log"), **extra)
    processes = []
    for state in states:
        with state.open("rb") as stdin:
            processes.append(
                subprocess.Popen(
                    [str(HOOK), "prestart"],
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
    return processes


def _exit_statuses(processes: list[subprocess.Popen[bytes]]) -> list[int]:
    return [process.wait(timeout=120) for process in processes]


def _events(log_file: Path) -> list[dict[str, Any]]:
    if not log_file.exists():
        return []
    return [json.loads(line) for line in log_file.read_text().splitlines()]


def _count_per_port(events: list[dict[str, Any]], event: str) -> dict[str, int]:
    return dict(collections.Counter(e["port"] for e in events if e["event"] == event))


@contextlib.contextmanager
def _holding_fme_lock(lock_dir: Path, fme: str) -> Iterator[None]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"{fme}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _wait_for_events(log_file: Path, event: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(e["event"] == event for e in _events(log_file)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {event!r} events"
        time.sleep(0.05)


def test_eight_hooks_at_once_program_each_of_four_ports_exactly_once(
    node: SimNode, tmp_path: Path
) -> None:
    card = _four_port_card(node)
    ports = [port.name for port in card.ports]

    statuses = _exit_statuses(_start_containers(node, card, tmp_path, 8))

    events = _events(tmp_path / "hooks.log")
    assert statuses == [0] * 8, events
    assert _count_per_port(events, PROGRAMMED) == dict.fromkeys(ports, 1)
    assert _count_per_port(events, SKIPPED) == dict.fromkeys(ports, 1)
    assert [port.afu_id() for port in card.ports] == [_wanted(i) for i in range(4)]


def test_hooks_waiting_for_the_fme_lock_skip_the_port_another_hook_just_programmed(
    node: SimNode, tmp_path: Path
) -> None:
    card = _four_port_card(node)
    ports = [port.name for port in card.ports]
    log_file = tmp_path / "hooks.log"

    processes: list[subprocess.Popen[bytes]] = []
    try:
        with _holding_fme_lock(node.root / "locks", "dfl-fme.0"):
            processes = _start_containers(node, card, tmp_path, 8)
            _wait_for_events(log_file, WAITING, 8)
        statuses = _exit_statuses(processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    events = _events(log_file)
    assert statuses == [0] * 8, events
    waited = {e["container_id"] for e in events if e["event"] == WAITING}
    locked = {e["container_id"] for e in events if e["event"] == GOT_LOCK}
    assert waited == locked == {f"container{n}" for n in range(8)}
    assert _count_per_port(events, PROGRAMMED) == dict.fromkeys(ports, 1)
    assert _count_per_port(events, SKIPPED) == dict.fromkeys(ports, 1)
    assert [port.afu_id() for port in card.ports] == [_wanted(i) for i in range(4)]


def test_a_lock_held_past_the_lock_timeout_fails_the_hook_and_programs_nothing(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    card = _four_port_card(node)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )

    with _holding_fme_lock(node.root / "locks", "dfl-fme.0"):
        started = time.monotonic()
        result = run_hook(node, state_json(bundle), FPGA_CRIHOOK_LOCK_TIMEOUT="0.3")
        elapsed = time.monotonic() - started

    events = [json.loads(line) for line in result.stderr.splitlines()]
    errors = [e for e in events if e["level"] == "error"]
    assert result.returncode == ExitStatus.DEVICE_BUSY
    assert WAITING in [e["event"] for e in events]
    assert len(errors) == 1
    assert "FME dfl-fme.0 stayed locked by another hook for 0.3 s" in errors[0]["error"]
    assert 0.3 <= elapsed < 10
    assert card.ports[0].afu_id() == AFU_1


def test_a_port_read_while_the_sim_programmer_rewrites_it_shows_the_old_or_the_new_afu(
    node: SimNode, lock_of: LockOf
) -> None:
    """Hooks survey ports without the FME lock: a half-written afu_id would fail them."""
    card = _four_port_card(node)
    settings = Settings(sysfs=node.sysfs, devfs=node.devfs, bitstreams=node.store)
    port = port_from_sysfs_dir(card.ports[0].sysfs_dir, settings)
    seen: set[str] = set()
    failures: list[str] = []
    done = threading.Event()

    def survey_until_done() -> None:
        while not done.is_set():
            try:
                seen.add(port.read_afu_id(busy_limit()))
            except HookError as error:
                failures.append(str(error))

    reader = threading.Thread(target=survey_until_done)
    reader.start()
    try:
        for afu in (AFU_2, AFU_3) * 100:
            entry = node.store / REGION_A / f"{afu}.gbs"
            with open_bitstream(entry, BitstreamKind.GBS, node.store) as bitstream:
                SimProgrammer(busy_limit()).program(port, bitstream, lock_of(port))
    finally:
        done.set()
        reader.join()

    assert failures == []
    assert seen <= {AFU_1, AFU_2, AFU_3}
