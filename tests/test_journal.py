"""Events to syslog (the journal): a real unix datagram socket stands in for /dev/log.

What a syslog daemon receives from the hook is one datagram per event,
``<PRI>fpga-crihook[PID]: {json}``: facility daemon, the identifier that
``journalctl -t fpga-crihook`` selects, and the event's fields.
"""

import io
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import structlog
from helpers import AFU_1, AFU_2, REGION_A, run_cli
from simnode import SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook import logs
from fpga_crihook.errors import ExitStatus

DAEMON = 3  # syslog facility numbers: <sys/syslog.h>
INFO, ERR, WARNING = 6, 3, 4
DATAGRAM = re.compile(rb"<(\d+)>fpga-crihook\[(\d+)\]: (.*)", re.DOTALL)


class Received(NamedTuple):
    """One datagram, taken apart."""

    facility: int
    severity: int
    pid: int
    event: dict[str, Any]


@pytest.fixture
def syslog_socket(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    """A bound unix datagram socket, as journald's /dev/log is."""
    path = tmp_path / "log.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    yield path, server
    server.close()


def _received(server: socket.socket) -> list[Received]:
    server.setblocking(False)
    found: list[Received] = []
    while True:
        try:
            datagram = server.recv(1 << 16)
        except BlockingIOError:
            return found
        match = DATAGRAM.fullmatch(datagram)
        assert match is not None, datagram
        priority = int(match[1])
        found.append(Received(priority >> 3, priority & 7, int(match[2]), json.loads(match[3])))


def _container(node: SimNode, tmp_path: Path, afu: str) -> str:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=["TOKEN=s3cret", f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={afu}"],
        devices=[card.ports[0].device()],
    )
    pod = {"io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "pod-1"}
    return state_json(bundle, annotations=pod)


def test_every_event_reaches_syslog_as_daemon_with_the_identifier(
    node: SimNode, tmp_path: Path, syslog_socket: tuple[Path, socket.socket]
) -> None:
    path, server = syslog_socket
    state = _container(node, tmp_path, AFU_2)

    result = run_cli(["prestart"], node.quiet_env(FPGA_CRIHOOK_SYSLOG=str(path)), state)

    assert (result.returncode, result.stderr) == (0, "")
    started, programmed = _received(server)
    assert (started.facility, started.severity) == (DAEMON, INFO)
    assert started.event["event"] == "hook started"
    assert started.pid == programmed.pid > 1
    assert programmed.event["event"] == "port programmed"
    assert programmed.event["port"] == "dfl-port.0"
    assert (programmed.event["afu_id"], programmed.event["previous_afu_id"]) == (AFU_2, AFU_1)
    assert (programmed.event["pod_namespace"], programmed.event["pod_name"]) == ("ns", "pod-1")
    assert isinstance(programmed.event["duration_ms"], float)
    assert "s3cret" not in json.dumps([started.event, programmed.event])


def test_a_failure_reaches_syslog_as_an_error(
    node: SimNode, tmp_path: Path, syslog_socket: tuple[Path, socket.socket]
) -> None:
    path, server = syslog_socket
    state = _container(node, tmp_path, "0123456789abcdef0123456789abcdef")

    result = run_cli(["prestart"], node.quiet_env(FPGA_CRIHOOK_SYSLOG=str(path)), state)

    assert result.returncode == ExitStatus.NO_BITSTREAM
    failed = _received(server)[-1]
    assert (failed.facility, failed.severity) == (DAEMON, ERR)
    assert failed.event["event"] == "prestart failed"
    assert result.stderr == f"fpga-crihook: {failed.event['error']}\n"


def _dead_socket(tmp_path: Path) -> Path:
    """A socket file nobody listens on any more: connecting is refused."""
    path = tmp_path / "dead.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.close()
    return path


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("dead", "Connection refused"), ("missing", "No such file or directory")],
)
def test_an_unusable_socket_costs_a_warning_not_the_container(
    node: SimNode, tmp_path: Path, kind: str, reason: str
) -> None:
    path = _dead_socket(tmp_path) if kind == "dead" else tmp_path / "nothing.sock"
    log_file = tmp_path / "hook.log"
    state = _container(node, tmp_path, AFU_2)

    quiet = run_cli(
        ["prestart"],
        node.quiet_env(FPGA_CRIHOOK_SYSLOG=str(path), FPGA_CRIHOOK_LOG_FILE=str(log_file)),
        state,
    )

    assert (quiet.returncode, quiet.stderr) == (0, "")
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    warnings = [event for event in events if event["level"] == "warning"]
    assert [(event["event"], event["reason"]) for event in warnings] == [
        ("cannot send events to syslog: going on without it", reason)
    ]
    assert events[-1]["event"] == "port programmed"


def _full_socket(tmp_path: Path) -> tuple[Path, socket.socket]:
    """A listening socket whose queue is full: it never reads."""
    path = tmp_path / "full.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.connect(str(path))
    filler.setblocking(False)
    try:
        while True:
            filler.send(b"x" * 1024)
    except BlockingIOError:
        pass
    finally:
        filler.close()
    return path, server


@pytest.mark.parametrize("kind", ["full", "dead", "missing"])
def test_a_bad_socket_holds_the_hook_only_a_few_milliseconds(tmp_path: Path, kind: str) -> None:
    server = None
    if kind == "full":
        path, server = _full_socket(tmp_path)
    else:
        path = _dead_socket(tmp_path) if kind == "dead" else tmp_path / "nothing.sock"
    stream = io.StringIO()
    logs.configure("info", logs.LogFormat.JSON, None, stream, syslog=str(path))
    log = structlog.get_logger()
    try:
        started = time.monotonic()
        for number in range(50):
            log.info("an event", number=number)
        spent = time.monotonic() - started
    finally:
        if server is not None:
            server.close()
    # At most two waits of SYSLOG_SEND_TIMEOUT, then syslog is given up for the run.
    assert spent < 0.050
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    [warning] = [event for event in events if event["level"] == "warning"]
    assert warning["event"] == "cannot send events to syslog: going on without it"
    assert warning["syslog"] == str(path)
    assert len(events) == 51


def test_auto_uses_dev_log_when_it_is_a_socket(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    syslog_socket: tuple[Path, socket.socket],
) -> None:
    path, server = syslog_socket
    monkeypatch.setattr(logs, "DEV_LOG", str(path))
    logs.configure("info", logs.LogFormat.JSON, None, io.StringIO(), syslog="auto")

    structlog.get_logger().info("an event")

    [received] = _received(server)
    assert received.event["event"] == "an event"
    assert received.pid == os.getpid()


def test_auto_without_dev_log_is_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "DEV_LOG", str(tmp_path / "no-such-socket"))
    stream = io.StringIO()
    logs.configure("info", logs.LogFormat.JSON, None, stream, syslog="auto")

    structlog.get_logger().info("an event")

    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["event"] == "an event"  # and no warning


def test_off_sends_nothing(
    node: SimNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    syslog_socket: tuple[Path, socket.socket],
) -> None:
    path, server = syslog_socket
    monkeypatch.setattr(logs, "DEV_LOG", str(path))
    logs.configure("info", logs.LogFormat.JSON, None, io.StringIO(), syslog="off")

    structlog.get_logger().info("an event")

    assert _received(server) == []
