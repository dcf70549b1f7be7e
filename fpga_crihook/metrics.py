"""Metrics for node-exporter's textfile collector: what the hook did to each port, over time.

With a metrics directory set, every run that dealt with FPGA ports adds its
outcomes to a state file and rewrites ``fpga_crihook.prom`` from it, both
under the directory's own lock, so hooks running at once lose no count. Each
file appears whole, in one rename: the collector never reads half a file.

The state is JSON kept beside the ``.prom`` file (the collector reads only
``*.prom``). A state file that is not what this module writes is started
afresh with a warning event: metrics never fail a container's start, nor
hold it up for long. prometheus_client (about 80 ms to import) is imported
only on runs that write metrics; ``devices`` reads the counts from the state
without it.
"""

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import structlog

from fpga_crihook import jsondocs
from fpga_crihook.deadline import Deadline, TimeLimit

PROM_FILE = "fpga_crihook.prom"
STATE_FILE = "fpga_crihook.state.json"
LOCK_FILE = "fpga_crihook.lock"
OUTCOMES = ("programmed", "skipped", "failed")  # a dry run's "would program" is not counted
# Partial reconfiguration takes seconds on real cards; the sim programmer milliseconds.
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOCK_TIMEOUT = 2.0  # seconds: other hooks hold the lock for milliseconds
MAX_STATE_BYTES = 4 << 20
_STATE_VERSION = 1
_POLL_SECONDS = 0.005


class PortOutcome(NamedTuple):
    """What one run did to one port; *seconds*: programming and verifying it."""

    port: str
    outcome: str
    seconds: float | None = None


@dataclasses.dataclass
class PortStats:
    """One port's totals over every recorded run."""

    counts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    buckets: list[int] = dataclasses.field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    seconds_sum: float = 0.0
    last_programmed: float | None = None  # Unix time

    def add(self, outcome: PortOutcome, now: float) -> None:
        self.counts[outcome.outcome] += 1
        if outcome.seconds is not None:
            self.buckets[_bucket(outcome.seconds)] += 1  # the last one is +Inf
            self.seconds_sum += outcome.seconds
            self.last_programmed = now


class _LockBusy(Exception):
    """Another process held the metrics lock for all of LOCK_TIMEOUT."""


def record(
    directory: Path,
    outcomes: Iterable[PortOutcome],
    now: float | None = None,
    deadline: Deadline | None = None,
) -> None:
    """Add one run's outcomes to the totals and rewrite the ``.prom`` file.

    Never raises: a problem is a warning event, and the run goes on. The wait
    for the directory's lock takes no more than what is left of *deadline*
    (the run's), if given.
    """
    counted = [outcome for outcome in outcomes if outcome.outcome in OUTCOMES]
    if not counted:
        return
    import prometheus_client  # noqa: F401, PLC0415 (before the lock: hold it for ms, not 80)

    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        with _locked(directory / LOCK_FILE, deadline):
            ports = load(directory)
            for outcome in counted:
                ports.setdefault(outcome.port, PortStats()).add(
                    outcome, time.time() if now is None else now
                )
            _replace(directory / STATE_FILE, _state_bytes(ports))
            _replace(directory / PROM_FILE, exposition(ports))
    except (OSError, _LockBusy) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        structlog.get_logger().warning(
            "cannot write the metrics: this run is not counted",
            metrics_dir=str(directory),
            reason=reason,
        )


def load(directory: Path) -> dict[str, PortStats]:
    """The totals in the state file; none when it is missing, and afresh (with a
    warning event) when it is not a state file this module wrote."""
    path = directory / STATE_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_STATE_BYTES + 1)
    try:
        return _parse_state(data)
    except (ValueError, TypeError, KeyError) as error:  # jsondocs.JsonProblem is a ValueError
        structlog.get_logger().warning(
            "the metrics state file is corrupt: counting afresh",
            state_file=str(path),
            reason=str(error),
        )
        return {}


def port_counts(directory: Path) -> dict[str, dict[str, int]]:
    """Each port's count per outcome (for ``devices``); a state file that cannot be
    read counts as none."""
    try:
        ports = load(directory)
    except OSError:
        return {}
    return {name: dict(stats.counts) for name, stats in ports.items()}


def exposition(ports: dict[str, PortStats]) -> bytes:
    """The totals in Prometheus' text format, through prometheus_client's own registry."""
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415 (80 ms)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(ports))
    return generate_latest(registry)


class _Collector:
    """prometheus_client's custom-collector protocol, over the persisted totals."""

    def __init__(self, ports: dict[str, PortStats]) -> None:
        self._ports = ports

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        outcomes = CounterMetricFamily(
            "fpga_crihook_port_outcomes",
            "Hook runs per FPGA port by outcome: programmed, skipped (the port already "
            "held the AFU) or failed (the container did not start).",
            labels=["port", "outcome"],
        )
        seconds = HistogramMetricFamily(
            "fpga_crihook_programming_seconds",
            "Time to program and verify a port.",
            labels=["port"],
        )
        last = GaugeMetricFamily(
            "fpga_crihook_last_programmed_timestamp_seconds",
            "When a port was last programmed, as Unix time.",
            labels=["port"],
        )
        for name, stats in sorted(self._ports.items()):
            for outcome in OUTCOMES:
                outcomes.add_metric([name, outcome], stats.counts[outcome])
            seconds.add_metric([name], _cumulative(stats.buckets), stats.seconds_sum)
            if stats.last_programmed is not None:
                last.add_metric([name], stats.last_programmed)
        yield from (outcomes, seconds, last)


def _cumulative(buckets: Sequence[int]) -> list[tuple[str, float]]:
    bounds = [*(repr(bound) for bound in BUCKETS), "+Inf"]
    total, result = 0, []
    for bound, count in zip(bounds, buckets, strict=True):
        total += count
        result.append((bound, float(total)))
    return result


def _bucket(seconds: float) -> int:
    return next((index for index, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))


@contextlib.contextmanager
def _locked(path: Path, deadline: Deadline | None) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        run = deadline if deadline is not None else Deadline.start(LOCK_TIMEOUT)
        countdown = TimeLimit(LOCK_TIMEOUT, run).start()
        while not _try_lock(fd):
            if countdown.over():
                raise _LockBusy(f"{path} stayed locked for {countdown.span()}")
            time.sleep(min(_POLL_SECONDS, countdown.left()))
        yield
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _replace(path: Path, data: bytes) -> None:
    """Write *path* whole under a temporary name the collector ignores, then rename it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            os.fchmod(file.fileno(), 0o644)  # node-exporter does not run as root
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _state_bytes(ports: dict[str, PortStats]) -> bytes:
    document = {
        "version": _STATE_VERSION,
        "ports": {name: dataclasses.asdict(stats) for name, stats in sorted(ports.items())},
    }
    return json.dumps(document, indent=1).encode("ascii") + b"\n"


def _parse_state(data: bytes) -> dict[str, PortStats]:
    if len(data) > MAX_STATE_BYTES:
        raise ValueError(f"it is larger than {MAX_STATE_BYTES} bytes")
    document = jsondocs.decode(data)
    if not isinstance(document, dict) or document.get("version") != _STATE_VERSION:
        raise ValueError(f"it is not a version {_STATE_VERSION} state document")
    ports = document["ports"]
    if not isinstance(ports, dict):
        raise TypeError("'ports' is not an object")
    return {str(name): _port_stats(name, entry) for name, entry in ports.items()}


def _port_stats(name: str, entry: Any) -> PortStats:
    if not isinstance(entry, dict) or set(entry) != {
        field.name for field in dataclasses.fields(PortStats)
    }:
        raise ValueError(f"port {name!r} does not have the fields of a port's totals")
    counts, buckets = entry["counts"], entry["buckets"]
    if not isinstance(counts, dict) or sorted(counts) != sorted(OUTCOMES):
        raise ValueError(f"port {name!r}: counts are not one per outcome {OUTCOMES}")
    if not isinstance(buckets, list) or len(buckets) != len(BUCKETS) + 1:
        raise ValueError(f"port {name!r}: buckets are not {len(BUCKETS) + 1} counts")
    if not all(_is_count(value) for value in [*counts.values(), *buckets]):
        raise ValueError(f"port {name!r}: a count is not a whole number of at least 0")
    seconds_sum, last = entry["seconds_sum"], entry["last_programmed"]
    if not _is_amount(seconds_sum) or not (last is None or _is_amount(last)):
        raise ValueError(f"port {name!r}: a time is not a number of at least 0")
    return PortStats(dict(counts), list(buckets), float(seconds_sum), last)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_amount(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
