"""Around the PR ioctl, the ioctl and sim programmers do what OPAE's own library does.

OPAE opens the FME and the port exclusively (the drivers answer EBUSY while
another process holds either), reads and clears the port's errors, sets the
user clocks a GBS asks for, and decodes a failed PR's error bits. The kernel
is played by :class:`DriverStandIn`, handed to the ioctl programmer; device
opens come in through ``programmers._open_device`` (a seam: on a simulated
node the device nodes are plain files, for which Linux ignores O_EXCL, so
exclusivity itself is the driver's and is injected here).
"""

import ctypes
import dataclasses
import errno
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import structlog
from helpers import AFU_1, AFU_2, REGION_A, Completed, busy_limit
from simnode import SimCard, SimNode, add_card, gbs_bytes, gbs_metadata, state_json, write_bundle

from fpga_crihook import cli, programmers
from fpga_crihook.devices import port_from_sysfs_dir
from fpga_crihook.errors import (
    DeviceBusyError,
    DeviceError,
    ExitStatus,
    ProgrammingError,
    SettingsError,
)
from fpga_crihook.hook import Outcome, ensure_port
from fpga_crihook.plan import Assignment
from fpga_crihook.programmers import (
    DFL_PORT_PR_STRUCT,
    OPAE_PORT_PR_STRUCT,
    IoctlProgrammer,
    Programmer,
    SimProgrammer,
)
from fpga_crihook.requests import Request
from fpga_crihook.settings import Settings

RAW = b"raw bitstream of AFU 2\n" * 300


class DriverStandIn:
    """The FME's PR ioctl: programs the port named by ``port_id``, or fails as a driver does.

    With *pr_error*, the OPAE driver writes the bits into the struct's
    ``status`` and the DFL driver into its FPGA manager's ``status`` text,
    and both answer EIO. It also notes whether the port's device node was
    held open by the caller during the call.
    """

    def __init__(self, card: SimCard, pr_error: int = 0, manager_text: str = "") -> None:
        self._card = card
        self._pr_error = pr_error
        self._manager_text = manager_text
        self.calls = 0
        self.port_held_open = False

    def __call__(self, fd: int, request: int, argument: bytearray) -> int:
        self.calls += 1
        opae = self._card.driver == "opae"
        layout = OPAE_PORT_PR_STRUCT if opae else DFL_PORT_PR_STRUCT
        fields = list(layout.unpack(argument))
        port = self._card.ports[fields[2]]
        self.port_held_open = _holds_open(port.name)
        if self._pr_error:
            if opae:
                fields[5] = self._pr_error
                argument[:] = layout.pack(*fields)
            elif self._card.manager_status_file is not None:
                self._card.manager_status_file.write_text(self._manager_text)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        assert ctypes.string_at(fields[4], fields[3]) == RAW
        port.afu_file.write_text(AFU_2 + "\n")
        return 0


def _holds_open(device_name: str) -> bool:
    fds = Path("/proc/self/fd")
    return any(
        os.readlink(fd).endswith(f"/dev/{device_name}") for fd in fds.iterdir() if fd.is_symlink()
    )


class World(NamedTuple):
    node: SimNode
    card: SimCard
    settings: Settings
    assignment: Assignment


def _world(
    node: SimNode, driver: str, *, clocks: tuple[object, object] = ("auto", "auto")
) -> World:
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    document = gbs_metadata(REGION_A, AFU_2)
    document["afu-image"].update(
        {"clock-frequency-high": clocks[0], "clock-frequency-low": clocks[1]}
    )
    gbs = node.store / REGION_A / f"{AFU_2}.gbs"
    gbs.parent.mkdir(parents=True)
    gbs.write_bytes(gbs_bytes(metadata=document, raw=RAW))
    settings = Settings(
        sysfs=node.sysfs,
        devfs=node.devfs,
        bitstreams=node.store,
        lock_dir=node.root / "locks",
        busy_timeout=0.3,
    )
    port = port_from_sysfs_dir(card.ports[0].sysfs_dir, settings)
    return World(node, card, settings, Assignment(Request("1", REGION_A, AFU_2), port))


def _gbs(world: World) -> Path:
    return world.node.store / REGION_A / f"{AFU_2}.gbs"


OpenDevice = Callable[[Path, int], int]


def _opens(monkeypatch: pytest.MonkeyPatch, busy: dict[str, int]) -> list[tuple[str, int]]:
    """Record every device open; ``busy[name]`` opens of that node fail with EBUSY (-1: all)."""
    real_open: OpenDevice = programmers._open_device
    seen: list[tuple[str, int]] = []

    def open_device(node: Path, flags: int) -> int:
        seen.append((node.name, flags))
        left = busy.get(node.name, 0)
        if left:
            busy[node.name] = left - 1 if left > 0 else left
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        return real_open(node, flags)

    monkeypatch.setattr(programmers, "_open_device", open_device)
    return seen


# --- user clocks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda card: IoctlProgrammer(busy_limit(0.3), ioctl=DriverStandIn(card)), "ioctl"),
        (None, "sim"),
    ],
    ids=["ioctl", "sim"],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["program", "dry-run"])
def test_a_gbs_asking_for_user_clocks_is_refused_by_a_programmer_that_cannot_set_them(
    node: SimNode,
    make: Callable[[SimCard], Programmer] | None,
    kind: str,
    dry_run: bool,
) -> None:
    world = _world(node, "dfl", clocks=(0, 312.5))
    programmer = make(world.card) if make else SimProgrammer(busy_limit(0.3))

    with pytest.raises(SettingsError) as refused:
        ensure_port(world.assignment, programmer, _with(world.settings, dry_run=dry_run))

    assert str(refused.value) == (
        f"{_gbs(world)} asks for user clocks (high 0 (no clock), low 312.5 MHz) to be set "
        f"before programming; the {kind} programmer cannot set them, and the AFU would run "
        "at the clocks the previous one left. The fpgaconf programmer "
        "(FPGA_CRIHOOK_PROGRAMMER=fpgaconf) sets them"
    )
    assert world.card.ports[0].afu_id() == AFU_1


@pytest.mark.parametrize(
    "clocks", [("auto", "auto"), ("auto-312", "auto-156"), (0, 0), (-1, "auto"), (0.5, 0)]
)
def test_a_gbs_asking_for_no_user_clock_is_programmed(
    node: SimNode, clocks: tuple[object, object]
) -> None:
    world = _world(node, "opae", clocks=clocks)
    kernel = DriverStandIn(world.card)

    result = ensure_port(
        world.assignment, IoctlProgrammer(busy_limit(0.3), ioctl=kernel), world.settings
    )

    assert result.outcome is Outcome.PROGRAMMED
    assert world.card.ports[0].afu_id() == AFU_2


# --- exclusive opens -----------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_the_fme_and_the_port_are_opened_exclusively_and_held_during_the_pr(
    node: SimNode, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    world = _world(node, driver)
    opened = _opens(monkeypatch, busy={})
    kernel = DriverStandIn(world.card)

    ensure_port(world.assignment, IoctlProgrammer(busy_limit(0.3), ioctl=kernel), world.settings)

    exclusive = os.O_RDWR | os.O_EXCL | os.O_CLOEXEC
    assert opened == [
        (world.card.fme_dir.name, exclusive),
        (world.card.ports[0].name, exclusive),
    ]
    assert kernel.port_held_open
    assert world.card.ports[0].afu_id() == AFU_2


@pytest.mark.parametrize("which", ["fme", "port"])
def test_a_device_held_by_another_process_stops_the_pr_after_the_busy_timeout(
    node: SimNode, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    world = _world(node, "dfl")
    busy_node = world.card.fme_dir.name if which == "fme" else world.card.ports[0].name
    opened = _opens(monkeypatch, busy={busy_node: -1})
    kernel = DriverStandIn(world.card)

    started = time.monotonic()
    with pytest.raises(DeviceBusyError) as refused:
        ensure_port(
            world.assignment, IoctlProgrammer(busy_limit(0.3), ioctl=kernel), world.settings
        )
    elapsed = time.monotonic() - started

    assert str(refused.value) == (
        f"programming port dfl-port.0 with {_gbs(world)} failed: {node.devfs / busy_node} is "
        "in use by another process (EBUSY for 0.3 s), and a device in use is not reprogrammed"
    )
    assert 0.3 <= elapsed < 2.0
    assert 3 <= sum(name == busy_node for name, _ in opened) <= 20  # backoff, not a busy loop
    assert kernel.calls == 0
    assert world.card.ports[0].afu_id() == AFU_1


def test_a_device_busy_for_a_moment_is_opened_once_it_is_free(
    node: SimNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(node, "opae")
    _opens(monkeypatch, busy={world.card.ports[0].name: 3})

    result = ensure_port(
        world.assignment,
        IoctlProgrammer(busy_limit(0.3), ioctl=DriverStandIn(world.card)),
        world.settings,
    )

    assert result.outcome is Outcome.PROGRAMMED
    assert world.card.ports[0].afu_id() == AFU_2


@pytest.fixture
def in_process_cli(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> Iterator[Callable[[list[str], dict[str, str], str], Completed]]:
    """Run ``fpga-crihook`` in this process (so seams apply), with *env* and *stdin*.

    The hook writes stderr with ``write(2)``: it is captured at the descriptor.
    """

    def run(args: list[str], env: dict[str, str], stdin: str) -> Completed:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", ["fpga-crihook", *args])
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        with pytest.raises(SystemExit) as exited:
            cli.main()
        captured = capfd.readouterr()
        return Completed(int(exited.value.code or 0), captured.out, captured.err)

    yield run
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.mark.parametrize("dry_run", ["0", "1"])
def test_the_hook_stops_the_container_when_its_port_is_in_use(
    node: SimNode,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    in_process_cli: Callable[[list[str], dict[str, str], str], Completed],
    dry_run: str,
) -> None:
    world = _world(node, "dfl")
    _opens(monkeypatch, busy={"dfl-port.0": -1})
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[world.card.ports[0].device()],
    )
    env = node.env(FPGA_CRIHOOK_BUSY_TIMEOUT="0.2", FPGA_CRIHOOK_DRY_RUN=dry_run)

    result = in_process_cli(["prestart"], env, state_json(bundle))  # the sim programmer

    assert result.returncode == ExitStatus.DEVICE_BUSY
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert f"{node.devfs / 'dfl-port.0'} is in use by another process (EBUSY for 0.2 s)" in error
    assert world.card.ports[0].afu_id() == AFU_1


def test_a_dry_run_fails_when_the_port_node_cannot_be_opened(node: SimNode) -> None:
    world = _world(node, "opae")
    (node.devfs / "intel-fpga-port.0").unlink()

    with pytest.raises(DeviceError) as refused:
        ensure_port(
            world.assignment, SimProgrammer(busy_limit(0.3)), _with(world.settings, dry_run=True)
        )

    assert f"opening {node.devfs / 'intel-fpga-port.0'}: ENOENT" in str(refused.value)


# --- port errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "attribute"), [("dfl", "errors/errors"), ("opae", "errors/clear")]
)
def test_port_errors_are_logged_and_written_back_to_clear_them_before_the_pr(
    node: SimNode, driver: str, attribute: str
) -> None:
    world = _world(node, driver)
    world.card.ports[0].errors_file.write_text("0x40\n")

    with structlog.testing.capture_logs() as events:
        ensure_port(
            world.assignment,
            IoctlProgrammer(busy_limit(0.3), ioctl=DriverStandIn(world.card)),
            world.settings,
        )

    assert (world.card.ports[0].sysfs_dir / attribute).read_text() == "0x40"  # what the driver got
    cleared = [e for e in events if e["event"] == "port errors cleared before programming"]
    assert [(e["port"], e["errors"], e["log_level"]) for e in cleared] == [
        (world.card.ports[0].name, "0x40", "info")
    ]
    assert world.card.ports[0].afu_id() == AFU_2


def test_no_port_errors_means_nothing_is_written(node: SimNode) -> None:
    world = _world(node, "opae")

    ensure_port(world.assignment, SimProgrammer(busy_limit(0.3)), world.settings)

    assert (world.card.ports[0].sysfs_dir / "errors" / "clear").read_text() == ""
    assert world.card.ports[0].afu_id() == AFU_2


def test_port_errors_that_cannot_be_cleared_are_a_warning_not_a_failure(node: SimNode) -> None:
    world = _world(node, "opae")
    world.card.ports[0].errors_file.write_text("0x1\n")
    clear = world.card.ports[0].sysfs_dir / "errors" / "clear"
    clear.unlink()

    with structlog.testing.capture_logs() as events:
        result = ensure_port(world.assignment, SimProgrammer(busy_limit(0.3)), world.settings)

    assert result.outcome is Outcome.PROGRAMMED
    assert world.card.ports[0].afu_id() == AFU_2
    assert not clear.exists()  # never created
    [warning] = [e for e in events if e["log_level"] == "warning"]
    assert warning["event"] == "cannot clear the port errors before programming"
    assert (warning["errors"], warning["attribute"]) == ("0x1", str(clear))


def test_unreadable_port_errors_are_a_warning_not_a_failure(node: SimNode) -> None:
    world = _world(node, "dfl")
    world.card.ports[0].errors_file.write_text("not a number\n")

    with structlog.testing.capture_logs() as events:
        result = ensure_port(world.assignment, SimProgrammer(busy_limit(0.3)), world.settings)

    assert result.outcome is Outcome.PROGRAMMED
    [warning] = [e for e in events if e["log_level"] == "warning"]
    assert warning["event"] == "cannot read the port errors before programming"
    assert world.card.ports[0].errors_file.read_text() == "not a number\n"


# --- PR error status -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (0x2, "PR status 0x2 (CRC error)"),
        (0x21, "PR status 0x21 (operation error, timeout)"),
        (0x44, "PR status 0x44 (incompatible bitstream, secure load error)"),
        (0x208, "PR status 0x208 (IP protocol error, unknown bit 9)"),
    ],
)
def test_an_opae_pr_failure_names_the_error_bits_the_driver_wrote_back(
    node: SimNode, status: int, words: str
) -> None:
    world = _world(node, "opae")
    kernel = DriverStandIn(world.card, pr_error=status)

    with pytest.raises(ProgrammingError) as failed:
        ensure_port(
            world.assignment, IoctlProgrammer(busy_limit(0.3), ioctl=kernel), world.settings
        )

    assert str(failed.value) == (
        f"programming port intel-fpga-port.0 with {_gbs(world)} failed: the PR ioctl on "
        f"{node.devfs / 'intel-fpga-fme.0'}: EIO: the hardware reported a "
        f"partial-reconfiguration error: {words}"
    )
    assert world.card.ports[0].afu_id() == AFU_1


def test_a_dfl_pr_failure_names_what_the_fpga_manager_reports(node: SimNode) -> None:
    world = _world(node, "dfl")
    kernel = DriverStandIn(
        world.card, pr_error=1, manager_text="reconfig CRC error\nreconfig fifo overflow error\n"
    )

    with pytest.raises(ProgrammingError) as failed:
        ensure_port(
            world.assignment, IoctlProgrammer(busy_limit(0.3), ioctl=kernel), world.settings
        )

    assert str(failed.value).endswith(
        "EIO: the hardware reported a partial-reconfiguration error: reconfig CRC error; "
        "reconfig fifo overflow error (dfl-fme-mgr.0/fpga_manager/fpga0/status)"
    )


def test_a_dfl_pr_failure_without_the_managers_status_names_the_errno(node: SimNode) -> None:
    world = _world(node, "dfl")
    assert world.card.manager_status_file is not None
    world.card.manager_status_file.unlink()
    kernel = DriverStandIn(world.card, pr_error=1)

    with pytest.raises(ProgrammingError) as failed:
        ensure_port(
            world.assignment, IoctlProgrammer(busy_limit(0.3), ioctl=kernel), world.settings
        )

    assert str(failed.value).endswith(
        f"{node.devfs / 'dfl-fme.0'}: EIO: the hardware reported a partial-reconfiguration error"
    )


def test_pr_status_words() -> None:
    assert programmers.describe_pr_status(0x7F) == (
        "PR status 0x7f (operation error, CRC error, incompatible bitstream, IP protocol "
        "error, FIFO overflow, timeout, secure load error)"
    )


def _with(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
