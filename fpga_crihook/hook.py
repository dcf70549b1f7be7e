"""The prestart hook, as one straight line:

state -> config -> requests -> ports -> plan -> (per port, under the FME lock)
check -> program -> verify.

Every step raises a :class:`~fpga_crihook.errors.HookError` subclass when it
cannot go on; the CLI turns that into the error event and the class's exit status.
"""

from __future__ import annotations  # the bitstream types below are for the type checker only

import dataclasses
import enum
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import structlog

from fpga_crihook import logs
from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Port, resolve_ports
from fpga_crihook.errors import (
    BitstreamError,
    HookError,
    InputError,
    NoBitstreamError,
    ProgrammingError,
)
from fpga_crihook.locking import FmeLock, fme_lock
from fpga_crihook.oci import RuntimeConfig, State, Trigger, leaves_alone, read_config
from fpga_crihook.plan import Assignment, assign, require_healthy_afu, survey
from fpga_crihook.programmers import LazyProgrammer, Programmer, make_programmer
from fpga_crihook.requests import (
    AFU_PREFIX,
    REGION_PREFIX,
    Request,
    names_fpga_variables,
    parse_requests,
)
from fpga_crihook.settings import Settings
from fpga_crihook.store import BitstreamKind, StoreEntry, locate, missing_message

if TYPE_CHECKING:  # a port that holds its AFU already needs none of the file formats
    from fpga_crihook.bitstream import Bitstream, BitstreamFacts

_ANNOTATED = "has the FPGA region annotation"
_WHY = {
    Trigger.INTEL_CDI: "was given an FPGA region by Intel's device plugin (its CDI spec runs "
    "intel-fpga-crihook)",
    Trigger.OWN_CDI: "was given an FPGA device through CDI",
}


class Outcome(enum.StrEnum):
    """What happened to one port."""

    SKIPPED = "skipped"  # it already held the AFU
    PROGRAMMED = "programmed"
    WOULD_PROGRAM = "would program"  # dry run
    FAILED = "failed"


class PortResult(NamedTuple):
    """The outcome for one request, and how long programming and verifying took."""

    assignment: Assignment
    outcome: Outcome
    seconds: float | None = None


@dataclasses.dataclass
class Progress:
    """How far a run got, kept by the caller: a run that fails still tells which
    ports it dealt with (the metrics count failures per port)."""

    ports: list[Port] = dataclasses.field(default_factory=list)  # once resolved
    results: list[PortResult] = dataclasses.field(default_factory=list)  # failed ones too

    def outcomes(self, failed: bool) -> list[tuple[str, Outcome, float | None]]:
        """Each port's outcome; for a run that *failed* before a port was marked so,
        every port it had not finished counts as failed."""
        done = [
            (result.assignment.port.name, result.outcome, result.seconds) for result in self.results
        ]
        if not failed or any(outcome is Outcome.FAILED for _, outcome, _ in done):
            return done
        finished = {name for name, _, _ in done}
        return done + [
            (port.name, Outcome.FAILED, None) for port in self.ports if port.name not in finished
        ]


def run_prestart(
    state: State,
    settings: Settings,
    progress: Progress | None = None,
    trigger: Trigger = Trigger.ANNOTATION,
    *,
    config_file: Path | None = None,
) -> list[PortResult]:
    """Make every port the container was given hold the AFU it asked for.

    Returns the per-port outcomes (empty when there is nothing to do); raises
    on the first request that cannot be satisfied. *progress*, when given,
    follows the run and keeps what it did when it raises. *trigger* says what
    made the runtime run the hook: the region annotation gates a hooks.d
    file's runs, Intel's CDI spec means region mode whether or not the
    runtime passed the annotation on, and our own CDI spec means the
    container asked for the device by name, so one that names no accelerator
    is given the device as it is. Whatever the trigger, a container with no
    FPGA port and no ``FPGA_*`` variable is left alone: CRI-O copies a pod's
    annotations into every container of the pod, sidecars included.
    The runtime config is the bundle's ``config.json`` unless *config_file*
    names another (a run by hand on a sample).
    """
    progress = Progress() if progress is None else progress
    log = structlog.get_logger()
    _bind_container(state)
    if leaves_alone(state, trigger):
        return []
    config_file = config_file or Path(state.bundle) / "config.json"
    config = read_config(config_file)
    if not names_fpga_variables(config.env) and _nothing_asked(config, trigger, settings):
        return []
    why = _ANNOTATED if state.is_fpga_region_container else _WHY.get(trigger, _ANNOTATED)
    _require_fields(config, config_file, why)
    requests = parse_requests(config.env, required=False)
    if not requests:
        raise InputError(f"the container {why} but no {REGION_PREFIX}N / {AFU_PREFIX}N variables")
    ports = progress.ports = resolve_ports(config.devices, settings)
    if not ports:
        raise InputError(f"the container {why} but none of its linux.devices is an FPGA port")
    log.info(
        "hook started",
        requests=[_describe(request) for request in requests],
        ports=[port.name for port in ports],
        dry_run=settings.dry_run,
    )
    assignments = assign(requests, survey(ports, settings.busy_limit))
    # A dry run, too, checks that it could program: its programmer is built at once.
    programmer = make_programmer(settings) if settings.dry_run else LazyProgrammer(settings)
    return _ensure_all(assignments, programmer, settings, progress.results)


def _nothing_asked(config: RuntimeConfig, trigger: Trigger, settings: Settings) -> bool:
    """For a container that names no accelerator: True (and why, as an event) when the hook
    has nothing to do; False when it was given an FPGA port it must not start without."""
    log = structlog.get_logger()
    if trigger is Trigger.OWN_CDI:
        log.info("no FPGA_REGION_N / FPGA_AFU_N variables: nothing to program")
        return True
    if resolve_ports(config.devices, settings):
        return False  # a port with no accelerator named: the checks below refuse it
    log.info(
        "no FPGA port and no FPGA_REGION_N / FPGA_AFU_N variables: nothing to do "
        "(another container of an FPGA pod)"
    )
    return True


def ensure_port(
    assignment: Assignment,
    programmer: Programmer,
    settings: Settings,
    force: bool = False,
    bitstream_file: StoreEntry | None = None,
) -> PortResult:
    """Check, program and verify one port while holding its FME's lock.

    The port's AFU is read again under the lock: another hook may have just
    programmed it. In a dry run (``settings.dry_run``) the programmer only
    rehearses. *bitstream_file* (an operator's file, not confined to the
    store) replaces the store lookup.
    """
    request, port = assignment
    log = structlog.get_logger().bind(
        port=port.name, interface_id=request.interface_id, afu_id=request.afu_id
    )
    with fme_lock(port.fme, settings.lock_dir, settings.lock_limit) as lock:
        current = port.read_afu_id(settings.busy_limit)
        require_healthy_afu(port, current)
        entry = bitstream_file or locate(settings.bitstreams, request.interface_id, request.afu_id)
        if (
            not force
            and current == request.afu_id
            and (entry is None or entry.kind is BitstreamKind.GBS)
        ):
            log.info("port already holds the AFU: skipped")
            return PortResult(assignment, Outcome.SKIPPED)
        if entry is None:
            raise NoBitstreamError(
                missing_message(settings.bitstreams, request.interface_id, request.afu_id)
            )
        store = settings.bitstreams if bitstream_file is None else None
        return _program(
            entry, store, assignment, programmer, lock, settings, log.bind(previous_afu_id=current)
        )


def _program(
    entry: StoreEntry,
    store: Path | None,
    assignment: Assignment,
    programmer: Programmer,
    lock: FmeLock,
    settings: Settings,
    log: structlog.typing.FilteringBoundLogger,
) -> PortResult:
    from fpga_crihook.bitstream import open_bitstream  # noqa: PLC0415 (only to program)

    request, port = assignment
    if settings.dry_run:
        return _rehearse(entry, store, assignment, programmer, log)
    with open_bitstream(entry.path, entry.kind, store) as bitstream:
        expected_afu = _check_fits(bitstream, request)
        # Nothing bounds a PR once it has begun: never begin one after the deadline.
        settings.deadline.require(f"programming port {port.name}")
        started = time.monotonic()
        programmer.program(port, bitstream, lock)
        verify(port, bitstream, expected_afu, settings.busy_limit)
        seconds = time.monotonic() - started
        log.info(
            "port programmed",
            bitstream=str(entry.path),
            bitstream_sha256=bitstream.digests.file_sha256,
            raw_sha256=bitstream.digests.raw_sha256,  # what the kernel was handed
            raw_bytes=len(bitstream.raw),
            duration_ms=round(seconds * 1000, 1),
        )
    return PortResult(assignment, Outcome.PROGRAMMED, seconds)


def _rehearse(
    entry: StoreEntry,
    store: Path | None,
    assignment: Assignment,
    programmer: Programmer,
    log: structlog.typing.FilteringBoundLogger,
) -> PortResult:
    """A dry run: every check; the bitstream is hashed, but never held whole."""
    from fpga_crihook.bitstream import inspect_bitstream  # noqa: PLC0415 (only to program)

    request, port = assignment
    bitstream = inspect_bitstream(entry.path, entry.kind, store)
    _check_fits(bitstream, request)
    programmer.rehearse(port, bitstream)
    log.info(
        "dry run: would program the port",
        bitstream=str(entry.path),
        bitstream_sha256=bitstream.digests.file_sha256,
        raw_sha256=bitstream.digests.raw_sha256,
    )
    return PortResult(assignment, Outcome.WOULD_PROGRAM)


def verify(port: Port, bitstream: Bitstream, expected_afu: str, busy: TimeLimit) -> None:
    """Fail unless the port now reports the bitstream's AFU."""
    actual = port.read_afu_id(busy)
    if actual != expected_afu:
        raise ProgrammingError(
            f"port {port.name} reports AFU {actual} after programming "
            f"{bitstream.source}, not {expected_afu}: the container must not "
            "run against the wrong accelerator"
        )


def _check_fits(bitstream: BitstreamFacts, request: Request) -> str:
    """Check the bitstream against the request; return the AFU ID to verify afterwards."""
    if bitstream.interface_id != request.interface_id:
        raise BitstreamError(
            f"{bitstream.source} was built for region {bitstream.interface_id}, "
            f"not the requested {request.interface_id}"
        )
    if bitstream.kind is BitstreamKind.GBS and bitstream.afu_id != request.afu_id:
        raise BitstreamError(
            f"{bitstream.source} holds AFU {bitstream.afu_id}, not the requested {request.afu_id}"
        )
    # An AOCX carries the board's AFU ID, shared by every OpenCL kernel (docs/design.md#aocx).
    return bitstream.afu_id


def _ensure_all(
    assignments: list[Assignment],
    programmer: Programmer,
    settings: Settings,
    results: list[PortResult],
) -> list[PortResult]:
    for index, assignment in enumerate(assignments):
        try:
            result = ensure_port(assignment, programmer, settings)
        except HookError as error:
            done = list(results)
            results.append(PortResult(assignment, Outcome.FAILED))
            if len(assignments) == 1:
                raise
            raise type(error)(f"{error} [{_progress(done, assignments[index:])}]") from None
        results.append(result)
    return results


def _progress(done: list[PortResult], remaining: list[Assignment]) -> str:
    finished = ", ".join(f"{result.assignment.port.name} {result.outcome}" for result in done)
    failed, *untouched = remaining
    parts = [f"done: {finished or 'none'}", f"failed: {failed.port.name}"]
    if untouched:
        parts.append("not attempted: " + ", ".join(item.port.name for item in untouched))
    return "; ".join(parts)


def _require_fields(config: RuntimeConfig, source: Path, why: str) -> None:
    for field, value in (("process.env", config.env), ("linux.devices", config.devices)):
        if not value:
            raise InputError(
                f"{source}: field {field!r} is missing or empty, but the container {why}"
            )


def _bind_container(state: State) -> None:
    logs.bind(container_id=state.id, **state.pod_identity)


def _describe(request: Request) -> dict[str, str]:
    return {"name": request.name, "interface_id": request.interface_id, "afu_id": request.afu_id}
