"""Metrics for node-exporter's textfile collector, read back with prometheus_client's parser."""

import fcntl
import io
import json
import multiprocessing
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, AFU_3, HOOK, REGION_A, REGION_B, Completed, run_cli
from prometheus_client.parser import text_string_to_metric_families
from simnode import SimCard, SimNode, SimPort, add_card, state_json, write_bundle, write_gbs

from fpga_crihook import logs, metrics
from fpga_crihook.deadline import Deadline
from fpga_crihook.errors import ExitStatus

UNKNOWN_AFU = "0123456789abcdef0123456789abcdef"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(directory: Path) -> Samples:
    """Every sample of the .prom file: (name, sorted labels) -> value."""
    text = (directory / metrics.PROM_FILE).read_text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _count(samples: Samples, port: str, outcome: str) -> float:
    key = (
        "fpga_crihook_port_outcomes_total",
        (("outcome", outcome), ("port", port)),
    )
    return samples[key]


def _programmed_count(samples: Samples, port: str) -> float:
    return samples[("fpga_crihook_programming_seconds_count", (("port", port),))]


def _state(
    tmp_path: Path, name: str, ports: list[SimPort], afus: list[str], region: str = REGION_A
) -> str:
    env = [f"FPGA_REGION_{i}={region}" for i in range(1, len(afus) + 1)]
    env += [f"FPGA_AFU_{i}={afu}" for i, afu in enumerate(afus, start=1)]
    bundle = write_bundle(tmp_path / name, env=env, devices=[port.device() for port in ports])
    return state_json(bundle)


def _card(node: SimNode, ports: int, index: int = 0, region: str = REGION_A) -> SimCard:
    card = add_card(
        node,
        "dfl",
        index=index,
        interface_id=region,
        afu_ids=[AFU_1] * ports,
        first_port=index * 10,
        pci_address=f"0000:{0x5E + index:02x}:00.0",
    )
    for afu in (AFU_1, AFU_2, AFU_3):
        write_gbs(node, region, afu)
    return card


def test_a_mix_of_runs_is_counted_per_port_and_outcome(node: SimNode, tmp_path: Path) -> None:
    card = _card(node, 3)
    p0, p1, p2 = card.ports
    metrics_dir = tmp_path / "textfile"
    env = node.quiet_env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir))
    runs = [
        (_state(tmp_path, "program", [p0], [AFU_2]), 0),
        (_state(tmp_path, "skip", [p0], [AFU_2]), 0),
        (_state(tmp_path, "missing", [p0], [UNKNOWN_AFU]), ExitStatus.NO_BITSTREAM),
        # p1 programmed, then p2 fails: p2 is the failed one, p1 still counts.
        (_state(tmp_path, "two", [p1, p2], [AFU_3, UNKNOWN_AFU]), ExitStatus.NO_BITSTREAM),
        # Bad input: no port is known yet, so no port is counted.
        (_state(tmp_path, "invalid", [p0], ["not-an-id"]), ExitStatus.CONTAINER_INPUT),
    ]

    statuses = [run_cli(["prestart"], env, state).returncode for state, _ in runs]

    assert statuses == [status for _, status in runs]
    samples = _samples(metrics_dir)
    counts = {
        (port.name, outcome): _count(samples, port.name, outcome)
        for port in (p0, p1, p2)
        for outcome in ("programmed", "skipped", "failed")
    }
    assert counts == {
        ("dfl-port.0", "programmed"): 1,
        ("dfl-port.0", "skipped"): 1,
        ("dfl-port.0", "failed"): 1,
        ("dfl-port.1", "programmed"): 1,
        ("dfl-port.1", "skipped"): 0,
        ("dfl-port.1", "failed"): 0,
        ("dfl-port.2", "programmed"): 0,
        ("dfl-port.2", "skipped"): 0,
        ("dfl-port.2", "failed"): 1,
    }
    assert _programmed_count(samples, "dfl-port.0") == 1
    assert _programmed_count(samples, "dfl-port.2") == 0
    assert samples[("fpga_crihook_programming_seconds_sum", (("port", "dfl-port.0"),))] > 0
    last = samples[("fpga_crihook_last_programmed_timestamp_seconds", (("port", "dfl-port.1"),))]
    assert abs(last - (metrics_dir / metrics.PROM_FILE).stat().st_mtime) < 60
    assert ("fpga_crihook_last_programmed_timestamp_seconds", (("port", "dfl-port.2"),)) not in (
        samples
    )


def test_a_failure_before_a_port_is_chosen_counts_against_the_containers_ports(
    node: SimNode, tmp_path: Path
) -> None:
    card = _card(node, 2)
    metrics_dir = tmp_path / "textfile"
    # Region B: no port of the container belongs to it.
    state = _state(tmp_path, "wrong-region", list(card.ports), [AFU_2], region=REGION_B)

    result = run_cli(["prestart"], node.quiet_env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir)), state)

    assert result.returncode == ExitStatus.DEVICE
    samples = _samples(metrics_dir)
    assert [_count(samples, port.name, "failed") for port in card.ports] == [1, 1]


def test_eight_hooks_at_once_lose_no_count(node: SimNode, tmp_path: Path) -> None:
    cards = [_card(node, 4, index=index) for index in range(2)]
    ports = [port for card in cards for port in card.ports]
    metrics_dir = tmp_path / "textfile"
    env = node.quiet_env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir))
    # Half the ports already hold what they are asked for, half get programmed.
    states = [
        _state(tmp_path, f"c{number}", [port], [AFU_1 if number % 2 else AFU_2])
        for number, port in enumerate(ports)
    ]

    started = [
        subprocess.Popen(
            [str(HOOK), "prestart"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in states
    ]
    results = [
        process.communicate(state, timeout=120)
        for process, state in zip(started, states, strict=True)
    ]

    assert [process.returncode for process in started] == [0] * 8, results
    samples = _samples(metrics_dir)
    for number, port in enumerate(ports):
        expected = ("skipped", "programmed")[number % 2 == 0]
        assert _count(samples, port.name, expected) == 1, port.name
    total = sum(
        _count(samples, port.name, outcome)
        for port in ports
        for outcome in ("programmed", "skipped", "failed")
    )
    assert total == 8
    assert sorted(os.listdir(metrics_dir)) == sorted(
        [metrics.PROM_FILE, metrics.STATE_FILE, metrics.LOCK_FILE]
    )  # no temporary file left behind


def _record_many(directory: Path, port: str, times: int) -> None:
    for _ in range(times):
        metrics.record(directory, [metrics.PortOutcome(port, "skipped")])


def test_writers_at_once_lose_no_count(tmp_path: Path) -> None:
    # Many more updates than hooks would make, so that unlocked ones would collide.
    forked = multiprocessing.get_context("fork")
    writers = [
        forked.Process(target=_record_many, args=(tmp_path, f"dfl-port.{number % 2}", 40))
        for number in range(8)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)

    assert [writer.exitcode for writer in writers] == [0] * 8
    samples = _samples(tmp_path)
    assert [_count(samples, f"dfl-port.{number}", "skipped") for number in (0, 1)] == [160, 160]


def test_the_prom_file_is_readable_by_node_exporter(node: SimNode, tmp_path: Path) -> None:
    card = _card(node, 1)
    metrics_dir = tmp_path / "textfile"
    state = _state(tmp_path, "program", list(card.ports), [AFU_2])

    run_cli(["prestart"], node.quiet_env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir)), state)

    mode = (metrics_dir / metrics.PROM_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o644


def test_a_corrupt_state_file_is_reset_with_a_warning(node: SimNode, tmp_path: Path) -> None:
    card = _card(node, 1)
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    (metrics_dir / metrics.STATE_FILE).write_text('{"version": 1, "ports": {"dfl-port.0": 7}}')
    state = _state(tmp_path, "program", list(card.ports), [AFU_2])

    result = run_cli(["prestart"], node.env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir)), state)

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    [warning] = [event for event in events if event["level"] == "warning"]
    assert warning["event"] == "the metrics state file is unusable: set aside, counting afresh"
    assert "dfl-port.0" in warning["reason"]
    assert _count(_samples(metrics_dir), "dfl-port.0", "programmed") == 1
    assert json.loads((metrics_dir / metrics.STATE_FILE).read_text())["version"] == 1


def test_metrics_that_cannot_be_written_never_fail_the_container(
    node: SimNode, tmp_path: Path
) -> None:
    card = _card(node, 1)
    not_a_directory = tmp_path / "textfile"
    not_a_directory.write_text("")
    state = _state(tmp_path, "program", list(card.ports), [AFU_2])

    result = run_cli(
        ["prestart"], node.quiet_env(FPGA_CRIHOOK_METRICS_DIR=str(not_a_directory)), state
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert card.ports[0].afu_id() == AFU_2


def test_a_dry_run_is_not_counted(node: SimNode, tmp_path: Path) -> None:
    card = _card(node, 1)
    metrics_dir = tmp_path / "textfile"
    state = _state(tmp_path, "dry", list(card.ports), [AFU_2])
    env = node.quiet_env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir), FPGA_CRIHOOK_DRY_RUN="1")

    result = run_cli(["prestart"], env, state)

    assert result.returncode == 0
    assert not (metrics_dir / metrics.PROM_FILE).exists()


def test_devices_shows_the_counts_per_port(node: SimNode, tmp_path: Path) -> None:
    card = _card(node, 2)
    metrics_dir = tmp_path / "textfile"
    env = node.quiet_env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir))
    for name, afu in (("a", AFU_2), ("b", AFU_2), ("c", UNKNOWN_AFU)):
        run_cli(["prestart"], env, _state(tmp_path, name, [card.ports[0]], [afu]))

    listing = run_cli(["devices"], env)
    as_json = run_cli(["devices", "--json"], env)
    without = run_cli(["devices", "--json"], node.quiet_env())

    header, first, second = listing.stdout.split("\n\n")[0].splitlines()
    assert header.split()[-3:] == ["PROGRAMMED", "SKIPPED", "FAILED"]
    assert first.split()[-3:] == ["1", "1", "1"]
    assert second.split()[-3:] == ["0", "0", "0"]
    ports = json.loads(as_json.stdout)["cards"][0]["ports"]
    assert [port["counts"] for port in ports] == [
        {"programmed": 1, "skipped": 1, "failed": 1},
        {"programmed": 0, "skipped": 0, "failed": 0},
    ]
    assert "counts" not in json.loads(without.stdout)["cards"][0]["ports"][0]


def test_devices_shows_no_counts_from_a_metrics_directory_the_hook_would_not_trust(
    node: SimNode, tmp_path: Path
) -> None:
    card = _card(node, 1)
    metrics_dir = tmp_path / "textfile"
    env = node.quiet_env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir))
    run_cli(["prestart"], env, _state(tmp_path, "a", [card.ports[0]], [AFU_2]))
    metrics_dir.chmod(0o777)  # anyone could have written the state file now

    listing = run_cli(["devices"], env)
    as_json = run_cli(["devices", "--json"], env)

    assert listing.returncode == 0, listing.stderr
    assert "PROGRAMMED" not in listing.stdout
    assert "counts" not in json.loads(as_json.stdout)["cards"][0]["ports"][0]
    assert listing.stderr.splitlines() == [
        f"warning: the metrics directory {metrics_dir} is writable by group or others "
        "(mode 0777): the hook writes no counts there, so these are not the hook's "
        f"(chmod go-w {metrics_dir}); counts not shown"
    ]


def test_state_round_trips_and_buckets_are_cumulative(tmp_path: Path) -> None:
    outcomes = [
        metrics.PortOutcome("dfl-port.0", "programmed", 0.05),
        metrics.PortOutcome("dfl-port.0", "programmed", 3.0),
        metrics.PortOutcome("dfl-port.0", "programmed", 120.0),
        metrics.PortOutcome("dfl-port.0", "would program"),
    ]

    metrics.record(tmp_path, outcomes, now=1_700_000_000.0)

    samples = _samples(tmp_path)
    bucket = "fpga_crihook_programming_seconds_bucket"
    assert samples[(bucket, (("le", "0.1"), ("port", "dfl-port.0")))] == 1
    assert samples[(bucket, (("le", "5.0"), ("port", "dfl-port.0")))] == 2
    assert samples[(bucket, (("le", "60.0"), ("port", "dfl-port.0")))] == 2
    assert samples[(bucket, (("le", "+Inf"), ("port", "dfl-port.0")))] == 3
    assert metrics.port_counts(tmp_path) == {
        "dfl-port.0": {"programmed": 3, "skipped": 0, "failed": 0}
    }
    assert samples[
        ("fpga_crihook_last_programmed_timestamp_seconds", (("port", "dfl-port.0"),))
    ] == (1_700_000_000.0)


def test_the_wait_for_the_metrics_lock_ends_with_the_runs_deadline(tmp_path: Path) -> None:
    stream = io.StringIO()
    logs.configure("info", logs.LogFormat.JSON, None, stream=stream, syslog="off")
    with (tmp_path / metrics.LOCK_FILE).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another hook, writing for a long time
        started = time.monotonic()
        metrics.record(
            tmp_path, [metrics.PortOutcome("dfl-port.0", "skipped")], deadline=Deadline.start(0.3)
        )
        elapsed = time.monotonic() - started

    assert elapsed < metrics.LOCK_TIMEOUT
    [event] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert event["event"] == "cannot write the metrics: this run is not counted"
    assert "all that was left of the hook's 0.3 s deadline" in event["reason"]
    assert not (tmp_path / metrics.PROM_FILE).exists()


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_a_metrics_lock_file_that_is_no_regular_file_skips_the_count_with_a_warning(
    tmp_path: Path, kind: str
) -> None:
    stream = io.StringIO()
    logs.configure("info", logs.LogFormat.JSON, None, stream=stream, syslog="off")
    lock_file = tmp_path / metrics.LOCK_FILE
    if kind == "fifo":
        os.mkfifo(lock_file)
    else:
        lock_file.symlink_to(tmp_path / "elsewhere")

    metrics.record(tmp_path, [metrics.PortOutcome("dfl-port.0", "skipped")])

    [event] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert event["event"] == "cannot write the metrics: this run is not counted"
    reason = {
        "fifo": f"{lock_file} is not a regular file: remove it",
        "symlink": "Too many levels of symbolic links",
    }[kind]
    assert event["reason"] == reason
    assert not (tmp_path / metrics.PROM_FILE).exists()
    assert not (tmp_path / "elsewhere").exists()


def _good_port(**fields: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "counts": {"programmed": 1, "skipped": 0, "failed": 0},
        "buckets": [1] + [0] * len(metrics.BUCKETS),
        "seconds_sum": 0.05,
        "last_programmed": 1_700_000_000.0,
    }
    entry.update(fields)
    return entry


def _hostile_json(ports: object) -> bytes:
    return json.dumps({"version": 1, "ports": ports}).encode()


HOSTILE_STATES = {
    "a 400-digit count": _hostile_json(
        {"dfl-port.9": _good_port(counts={"programmed": 10**400, "skipped": 0, "failed": 0})}
    ),
    "a 400-digit time": _hostile_json({"dfl-port.9": _good_port(seconds_sum=10**400)}),
    "a 400-digit timestamp": _hostile_json({"dfl-port.9": _good_port(last_programmed=10**400)}),
    "a lone surrogate as port name": b'{"version": 1, "ports": {"\\ud800": '
    + json.dumps(_good_port()).encode()
    + b"}}",
    "a port name with a newline": _hostile_json({"dfl-port.9\n# TYPE x counter": _good_port()}),
    "counts of the wrong type": _hostile_json({"dfl-port.9": _good_port(counts=[1, 2, 3])}),
    "ports as a list": _hostile_json([_good_port()]),
    "too many ports": _hostile_json({f"dfl-port.{n}": _good_port() for n in range(5000)}),
    "not JSON": b"\xff\xfe{",
    "larger than its limit": b" " * (metrics.MAX_STATE_BYTES + 1),
}


def _programming_run(node: SimNode, tmp_path: Path, metrics_dir: Path) -> Completed:
    card = _card(node, 1)
    state = _state(tmp_path, "program", list(card.ports), [AFU_2])
    result = run_cli(["prestart"], node.env(FPGA_CRIHOOK_METRICS_DIR=str(metrics_dir)), state)
    assert card.ports[0].afu_id() == AFU_2
    return result


def _warnings(result: Completed) -> list[dict[str, str]]:
    events = [json.loads(line) for line in result.stderr.splitlines()]
    return [event for event in events if event["level"] == "warning"]


@pytest.mark.parametrize("content", HOSTILE_STATES.values(), ids=HOSTILE_STATES.keys())
def test_a_hostile_state_file_is_set_aside_and_never_fails_the_container(
    node: SimNode, tmp_path: Path, content: bytes
) -> None:
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir(mode=0o755)
    (metrics_dir / metrics.STATE_FILE).write_bytes(content)

    result = _programming_run(node, tmp_path, metrics_dir)

    assert result.returncode == 0, result.stderr
    [warning] = _warnings(result)
    assert warning["event"] == "the metrics state file is unusable: set aside, counting afresh"
    assert warning["set_aside_as"] == str(metrics_dir / f"{metrics.STATE_FILE}.corrupt")
    assert (metrics_dir / f"{metrics.STATE_FILE}.corrupt").read_bytes() == content
    assert _count(_samples(metrics_dir), "dfl-port.0", "programmed") == 1
    assert metrics.port_counts(metrics_dir) == {
        "dfl-port.0": {"programmed": 1, "skipped": 0, "failed": 0}
    }


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_a_state_file_that_is_no_regular_file_is_set_aside(
    node: SimNode, tmp_path: Path, kind: str
) -> None:
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir(mode=0o755)
    state_file = metrics_dir / metrics.STATE_FILE
    if kind == "symlink":
        (tmp_path / "elsewhere.json").write_text('{"version": 1, "ports": {}}')
        state_file.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "fifo":
        os.mkfifo(state_file)
    else:
        state_file.mkdir()

    result = _programming_run(node, tmp_path, metrics_dir)

    assert result.returncode == 0, result.stderr
    assert [w["event"] for w in _warnings(result)] == [
        "the metrics state file is unusable: set aside, counting afresh"
    ]
    assert os.path.lexists(metrics_dir / f"{metrics.STATE_FILE}.corrupt")
    assert _count(_samples(metrics_dir), "dfl-port.0", "programmed") == 1


@pytest.mark.parametrize(
    ("mode", "owner", "reason"),
    [
        (0o777, None, "is writable by group or others (mode 0777)"),
        (0o775, None, "is writable by group or others (mode 0775)"),
        (0o755, 4242, "is owned by uid 4242, not root"),
    ],
)
def test_a_metrics_directory_others_can_change_is_skipped_with_a_warning(
    node: SimNode, tmp_path: Path, mode: int, owner: int | None, reason: str
) -> None:
    if owner is not None and os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    metrics_dir.chmod(mode)
    if owner is not None:
        os.chown(metrics_dir, owner, owner)

    result = _programming_run(node, tmp_path, metrics_dir)

    assert result.returncode == 0, result.stderr
    [warning] = _warnings(result)
    assert warning["event"] == "cannot write the metrics: this run is not counted"
    assert warning["reason"].startswith(f"the metrics directory {metrics_dir} {reason}")
    assert os.listdir(metrics_dir) == []


def test_any_error_while_writing_metrics_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    logs.configure("info", logs.LogFormat.JSON, None, stream=stream, syslog="off")

    def broken(_ports: object) -> bytes:
        raise ZeroDivisionError("a bug in the exposition")

    monkeypatch.setattr(metrics, "exposition", broken)

    metrics.record(tmp_path, [metrics.PortOutcome("dfl-port.0", "skipped")])

    [event] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert event["event"] == "cannot write the metrics: this run is not counted"
    assert event["reason"] == "ZeroDivisionError: a bug in the exposition"
