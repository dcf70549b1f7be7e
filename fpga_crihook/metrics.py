"""Metrics for node-exporter's textfile collector: what the hook did to each port, over time.

With a metrics directory set, every run that dealt with FPGA ports adds its
outcomes to a state file and rewrites ``fpga_crihook.prom`` from it, both
under the directory's own lock, so hooks running at once lose no count. Each
file appears whole, in one rename: the collector never reads half a file.

The state is JSON kept beside the ``.prom`` file (the collector reads only
``*.prom``). A state file that is not what this module writes (whatever it
holds, or a symlink, a FIFO or a directory in its place) is renamed
``*.corrupt`` and counting starts afresh, with a warning event. The hook runs
as root and rewrites files there, so the directory must be root's (or the
user's running the command) and writable by nobody else, else metrics are
skipped with a warning. Metrics never fail a container's start, nor hold it
up longer than the wait for their lock. prometheus_client is imported only
on runs that write metrics (its import, the lock and the two files add about
20 ms of CPU to such a start: bench/README.md, "What metrics cost");
``devices`` reads the counts from the state without it.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import structlog

from fpga_crihook import files, jsondocs, trust
from fpga_crihook.deadline import Deadline, TimeLimit

PROM_FILE = "fpga_crihook.prom"
STATE_FILE = "fpga_crihook.state.json"
LOCK_FILE = "fpga_crihook.lock"
OUTCOMES = ("programmed", "skipped", "failed")  # a dry run's "would program" is not counted
# Partial reconfiguration takes seconds on real cards; the sim programmer milliseconds.
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LOCK_TIMEOUT = 2.0  # seconds: other hooks hold the lock for milliseconds
MAX_STATE_BYTES = 4 << 20
MAX_PORTS = 1024  # a node has tens of ports: more is not a state this module wrote
_STATE_VERSION = 1
# Every value ends up a float64 in the exposition: whole numbers are exact up to 2**53.
_LARGEST = 2**53
_PORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
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


class _Skipped(Exception):
    """Metrics are not written this run: the directory is not trusted, or its lock stayed
    taken for all of LOCK_TIMEOUT."""


class UntrustedDirectory(_Skipped):
    """The metrics directory fails :mod:`~fpga_crihook.trust`'s rule, so what it holds may
    not be the hook's counts."""


class _Unusable(ValueError):
    """The state file is not a state this module wrote: why, as the end of a sentence."""


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
        _record(directory, counted, time.time() if now is None else now, deadline)
        return
    except _Skipped as skipped:
        reason = str(skipped)
    except OSError as error:
        reason = error.strerror or str(error)
    except Exception as error:  # noqa: BLE001
        # The one place where every error is caught: metrics must never change what
        # happens to a container. Whatever goes wrong here (the state, the directory,
        # prometheus_client) costs this run's count and a warning, not the container.
        reason = f"{type(error).__name__}: {error}"
    structlog.get_logger().warning(
        "cannot write the metrics: this run is not counted",
        metrics_dir=str(directory),
        reason=reason,
    )


def _record(
    directory: Path, counted: list[PortOutcome], now: float, deadline: Deadline | None
) -> None:
    dir_fd = _open_directory(directory)
    try:
        with _locked(dir_fd, directory / LOCK_FILE, deadline):
            ports = _load_or_set_aside(dir_fd, directory)
            for outcome in counted:
                ports.setdefault(outcome.port, PortStats()).add(outcome, now)
            exposed = exposition(ports)  # before either file is replaced
            _replace(dir_fd, STATE_FILE, _state_bytes(ports))
            _replace(dir_fd, PROM_FILE, exposed)
    finally:
        os.close(dir_fd)


def _open_directory(directory: Path) -> int:
    """The metrics directory, made if missing, opened; refused unless only root can change it."""
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    return _open_trusted(
        directory, "others could change what the hook, running as root, reads and replaces there"
    )


def _open_trusted(directory: Path, why: str) -> int:
    """*directory* opened; :class:`UntrustedDirectory`, saying *why* that matters, unless
    only root can change it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    subject = f"the metrics directory {directory}"
    return trust.require_open(fd, directory, subject=subject, why=why, error=UntrustedDirectory)


def _load_or_set_aside(dir_fd: int, directory: Path) -> dict[str, PortStats]:
    """The totals; a state file that cannot be used is renamed ``*.corrupt`` (for a look
    later) and counting starts afresh, with a warning event."""
    try:
        return _read_state(dir_fd)
    except _Unusable as problem:
        corrupt = f"{STATE_FILE}.corrupt"
        os.replace(STATE_FILE, corrupt, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        structlog.get_logger().warning(
            "the metrics state file is unusable: set aside, counting afresh",
            state_file=str(directory / STATE_FILE),
            set_aside_as=str(directory / corrupt),
            reason=str(problem),
        )
        return {}


def _read_state(dir_fd: int) -> dict[str, PortStats]:
    """The totals in the state file of the directory open at *dir_fd*; none when it is
    missing. :class:`_Unusable` when it is not a state file this module wrote."""
    try:
        fd = files.open_regular(STATE_FILE, dir_fd=dir_fd)
    except FileNotFoundError:
        return {}
    except files.NotRegularFile:
        raise _Unusable("it is not a regular file") from None
    except OSError as error:  # ELOOP: a symlink
        raise _Unusable(f"it cannot be opened: {error.strerror}") from None
    try:
        data = files.read_at_most(fd, MAX_STATE_BYTES)
    except files.TooLarge:
        raise _Unusable(f"it is larger than {MAX_STATE_BYTES} bytes") from None
    except OSError as error:
        raise _Unusable(f"it cannot be read: {error.strerror}") from None
    finally:
        os.close(fd)
    return _parse_state(data)


def port_counts(directory: Path) -> dict[str, dict[str, int]]:
    """Each port's count per outcome (for ``devices``); a state file that cannot be
    read counts as none. :class:`UntrustedDirectory` when the directory fails the rule the
    hook holds it to: the hook writes nothing there, so its counts are somebody else's."""
    try:
        dir_fd = _open_trusted(
            directory, "the hook writes no counts there, so these are not the hook's"
        )
    except OSError:
        return {}
    try:
        ports = _read_state(dir_fd)
    except _Unusable:
        return {}
    finally:
        os.close(dir_fd)
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
def _locked(dir_fd: int, path: Path, deadline: Deadline | None) -> Iterator[None]:
    try:
        fd = files.open_regular(path.name, os.O_RDWR | os.O_CREAT, dir_fd=dir_fd)
    except files.NotRegularFile:
        raise _Skipped(f"{path} is not a regular file: remove it") from None
    try:
        run = deadline if deadline is not None else Deadline.start(LOCK_TIMEOUT)
        countdown = TimeLimit(LOCK_TIMEOUT, run).start()
        while not _try_lock(fd):
            if countdown.over():
                raise _Skipped(f"{path} stayed locked for {countdown.span()}")
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


def _replace(dir_fd: int, name: str, data: bytes) -> None:
    """Write *name* whole under a temporary name the collector ignores, then rename it."""
    temporary = f".{name}.{os.urandom(8).hex()}.tmp"  # O_EXCL below: a clash fails, never mixes
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            os.fchmod(file.fileno(), 0o644)  # node-exporter does not run as root
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        os.unlink(temporary, dir_fd=dir_fd)
        raise


def _state_bytes(ports: dict[str, PortStats]) -> bytes:
    document = {
        "version": _STATE_VERSION,
        "ports": {name: dataclasses.asdict(stats) for name, stats in sorted(ports.items())},
    }
    return json.dumps(document, indent=1).encode("ascii") + b"\n"


def _parse_state(data: bytes) -> dict[str, PortStats]:
    try:
        document = jsondocs.decode(data)
    except jsondocs.JsonProblem as problem:
        raise _Unusable(f"it {problem}") from None
    if not isinstance(document, dict) or document.get("version") != _STATE_VERSION:
        raise _Unusable(f"it is not a version {_STATE_VERSION} state document")
    ports = document.get("ports")
    if not isinstance(ports, dict) or len(ports) > MAX_PORTS:
        raise _Unusable(f"'ports' is not an object of at most {MAX_PORTS} ports")
    return {_port_name(name): _port_stats(name, entry) for name, entry in ports.items()}


def _port_name(name: str) -> str:
    if not _PORT_NAME.fullmatch(name):
        raise _Unusable(f"{name!r} is not a port name")
    return name


def _port_stats(name: str, entry: Any) -> PortStats:
    if not isinstance(entry, dict) or set(entry) != {
        field.name for field in dataclasses.fields(PortStats)
    }:
        raise _Unusable(f"port {name!r} does not have the fields of a port's totals")
    counts, buckets = entry["counts"], entry["buckets"]
    if not isinstance(counts, dict) or sorted(counts) != sorted(OUTCOMES):
        raise _Unusable(f"port {name!r}: counts are not one per outcome {OUTCOMES}")
    if not isinstance(buckets, list) or len(buckets) != len(BUCKETS) + 1:
        raise _Unusable(f"port {name!r}: buckets are not {len(BUCKETS) + 1} counts")
    if not all(_is_count(value) for value in [*counts.values(), *buckets]):
        raise _Unusable(f"port {name!r}: a count is not a whole number from 0 to 2**53")
    seconds_sum, last = entry["seconds_sum"], entry["last_programmed"]
    if not _is_amount(seconds_sum) or not (last is None or _is_amount(last)):
        raise _Unusable(f"port {name!r}: a time is not a number from 0 to 2**53")
    return PortStats(dict(counts), list(buckets), float(seconds_sum), last)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _LARGEST


def _is_amount(value: Any) -> bool:
    # Python compares an int of any size with a float exactly; NaN compares false.
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= _LARGEST
