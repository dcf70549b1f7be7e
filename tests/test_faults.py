"""Faults while programming and reading sysfs, injected in-process.

The kernel's part is played by a fake ``ioctl`` handed to
:class:`~fpga_crihook.programmers.IoctlProgrammer`: it decodes the PR struct
the hook built, reads the raw bitstream at the address it names and, unless
told to fail, writes the bitstream's AFU into the simulated port's
``afu_id``, as the driver would. Sysfs faults come in through
``fpga_crihook.sysfs._read_raw``.
"""

import ctypes
import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, AFU_3, REGION_A, RunHook, busy_limit, run_cli
from simnode import SimCard, SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook import programmers, sysfs
from fpga_crihook.bitstream import Bitstream, BitstreamFacts
from fpga_crihook.devices import Port, port_from_sysfs_dir
from fpga_crihook.errors import DeviceError, ExitStatus, ProgrammingError, SettingsError
from fpga_crihook.hook import Outcome, ensure_port, run_prestart
from fpga_crihook.locking import FmeLock
from fpga_crihook.oci import parse_state
from fpga_crihook.plan import Assignment, survey
from fpga_crihook.programmers import (
    DFL_PORT_PR_STRUCT,
    OPAE_PORT_PR_STRUCT,
    IoctlProgrammer,
    Programmer,
    make_programmer,
)
from fpga_crihook.requests import Request
from fpga_crihook.settings import ProgrammerKind, Settings

ALL_ONES = "f" * 32


def _raw(afu: str) -> bytes:
    return f"raw bitstream of {afu}\n".encode() * 256


class FakeKernel:
    """The FME driver's PR ioctl: programs the port named by ``port_id``, or fails."""

    def __init__(self, card: SimCard, fail: dict[int, int] | None = None) -> None:
        self._ports = {number: port for number, port in enumerate(card.ports)}
        self._fail = fail or {}
        self._afu_by_raw = {_raw(afu): afu for afu in (AFU_1, AFU_2, AFU_3)}
        self._opae = card.driver == "opae"
        self.pr_status = 0

    def __call__(self, fd: int, request: int, argument: bytearray) -> int:
        layout = OPAE_PORT_PR_STRUCT if self._opae else DFL_PORT_PR_STRUCT
        fields = list(layout.unpack(argument))
        port_id, size, address = fields[2], fields[3], fields[4]
        if port_id in self._fail:
            code = self._fail[port_id]
            raise OSError(code, os.strerror(code))
        if self.pr_status:
            fields[5] = self.pr_status
            argument[:] = layout.pack(*fields)
            return 0
        afu = self._afu_by_raw[ctypes.string_at(address, size)]
        self._ports[port_id].afu_file.write_text(afu + "\n")
        return 0


class DoesNothing:
    """A programmer that returns without programming: only verification can notice."""

    def program(self, port: Port, bitstream: Bitstream, lock: FmeLock) -> None:
        """Nothing at all."""

    def rehearse(self, port: Port, bitstream: BitstreamFacts) -> None:
        """Nothing either."""


def _card(node: SimNode, driver: str = "dfl", ports: int = 1) -> SimCard:
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1] * ports)
    for afu in (AFU_2, AFU_3):
        write_gbs(node, REGION_A, afu, raw=_raw(afu))
    return card


def _settings(node: SimNode, **changes: object) -> Settings:
    values: dict[str, object] = {
        "sysfs": node.sysfs,
        "devfs": node.devfs,
        "bitstreams": node.store,
        "lock_dir": node.root / "locks",
        "lock_timeout": 5.0,
        "busy_timeout": 0.5,
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def _assignment(card: SimCard, settings: Settings, afu: str = AFU_2, index: int = 0) -> Assignment:
    port = port_from_sysfs_dir(card.ports[index].sysfs_dir, settings)
    return Assignment(Request("1", REGION_A, afu), port)


def _gbs(node: SimNode, afu: str = AFU_2) -> Path:
    return node.store / REGION_A / f"{afu}.gbs"


def _bundle_asking_for_afu_2(tmp_path: Path, card: SimCard) -> Path:
    return write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )


# --- point 6: the kernel call and the checks around it ---


@pytest.mark.parametrize(
    ("code", "name", "hint"),
    [
        (errno.EIO, "EIO", "hardware reported a partial-reconfiguration error"),
        (errno.ENOTTY, "ENOTTY", "does not accept the FPGA PR ioctl"),
        (errno.ENODEV, "ENODEV", "the device is gone"),
        (errno.EACCES, "EACCES", "permission denied"),
        (errno.EBUSY, "EBUSY", "busy"),
    ],
    ids=["EIO", "ENOTTY", "ENODEV", "EACCES", "EBUSY"],
)
def test_a_failing_pr_ioctl_names_port_fme_bitstream_and_cause(
    node: SimNode, code: int, name: str, hint: str
) -> None:
    card = _card(node)
    settings = _settings(node)
    programmer = IoctlProgrammer(settings.busy_limit, ioctl=FakeKernel(card, fail={0: code}))

    with pytest.raises(ProgrammingError) as failure:
        ensure_port(_assignment(card, settings), programmer, settings)

    message = str(failure.value)
    assert "port dfl-port.0" in message
    assert str(_gbs(node)) in message
    assert str(node.devfs / "dfl-fme.0") in message
    assert f"{name}: " in message
    assert hint in message
    assert card.ports[0].afu_id() == AFU_1


def test_the_fake_kernel_programs_the_port_with_the_raw_bitstream(node: SimNode) -> None:
    """The baseline for the fault tests: without a fault the port ends with the AFU."""
    card = _card(node)
    settings = _settings(node)
    programmer = IoctlProgrammer(settings.busy_limit, ioctl=FakeKernel(card))

    outcome = ensure_port(_assignment(card, settings), programmer, settings).outcome

    assert outcome is Outcome.PROGRAMMED
    assert card.ports[0].afu_id() == AFU_2


def test_the_real_pr_ioctl_on_a_node_that_is_not_an_fme_fails_with_enotty(node: SimNode) -> None:
    card = _card(node)  # the simulated FME node is a plain file
    settings = _settings(node)

    with pytest.raises(ProgrammingError, match="ENOTTY") as failure:
        ensure_port(_assignment(card, settings), IoctlProgrammer(settings.busy_limit), settings)

    assert str(_gbs(node)) in str(failure.value)
    assert card.ports[0].afu_id() == AFU_1


def test_a_missing_fme_node_fails_before_the_kernel_is_called(node: SimNode) -> None:
    card = _card(node)
    (node.devfs / "dfl-fme.0").unlink()
    settings = _settings(node)
    programmer = IoctlProgrammer(settings.busy_limit, ioctl=FakeKernel(card))

    with pytest.raises(DeviceError) as failure:
        ensure_port(_assignment(card, settings), programmer, settings)

    message = str(failure.value)
    assert f"opening {node.devfs / 'dfl-fme.0'}: ENOENT" in message
    assert "port dfl-port.0" in message
    assert str(_gbs(node)) in message
    assert card.ports[0].afu_id() == AFU_1


def test_an_opae_pr_status_written_back_by_the_driver_fails_the_port(node: SimNode) -> None:
    card = _card(node, driver="opae")
    settings = _settings(node)
    kernel = FakeKernel(card)
    kernel.pr_status = 0x2
    programmer = IoctlProgrammer(settings.busy_limit, ioctl=kernel)

    with pytest.raises(ProgrammingError, match="PR status 0x2") as failure:
        ensure_port(_assignment(card, settings), programmer, settings)

    assert "intel-fpga-port.0" in str(failure.value)
    assert str(_gbs(node)) in str(failure.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda card: DoesNothing(),
        lambda card: IoctlProgrammer(busy_limit(0.5), ioctl=lambda fd, request, argument: 0),
    ],
    ids=["programmer-does-nothing", "ioctl-succeeds-without-effect"],
)
def test_a_port_not_reporting_the_new_afu_after_programming_fails_verification(
    node: SimNode, make: Callable[[SimCard], Programmer]
) -> None:
    card = _card(node)
    settings = _settings(node)

    with pytest.raises(ProgrammingError) as failure:
        ensure_port(_assignment(card, settings), make(card), settings)

    assert str(failure.value) == (
        f"port dfl-port.0 reports AFU {AFU_1} after programming {_gbs(node)}, "
        f"not {AFU_2}: the container must not run against the wrong accelerator"
    )


def _three_requests(node: SimNode, tmp_path: Path, card: SimCard) -> Path:
    env = [
        f"FPGA_REGION_1={REGION_A}",
        f"FPGA_AFU_1={AFU_2}",
        f"FPGA_REGION_2={REGION_A}",
        f"FPGA_AFU_2={AFU_3}",
        f"FPGA_REGION_3={REGION_A}",
        f"FPGA_AFU_3={AFU_2}",
    ]
    return write_bundle(
        tmp_path / "bundle", env=env, devices=[port.device() for port in card.ports]
    )


def _with_kernel(monkeypatch: pytest.MonkeyPatch, kernel: FakeKernel) -> None:
    # The hook builds its programmer through programmers.make_programmer when a
    # port first needs programming: give it the ioctl programmer with a fake kernel.
    monkeypatch.setattr(
        programmers,
        "make_programmer",
        lambda settings: IoctlProgrammer(busy_limit(0.5), ioctl=kernel),
    )


def test_with_several_requests_the_error_says_which_ports_were_done_and_which_failed(
    node: SimNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = _card(node, ports=3)
    bundle = _three_requests(node, tmp_path, card)
    _with_kernel(monkeypatch, FakeKernel(card, fail={1: errno.EIO}))

    with pytest.raises(ProgrammingError) as failure:
        run_prestart(parse_state(state_json(bundle).encode()), _settings(node))

    message = str(failure.value)
    assert "port dfl-port.1" in message
    assert "EIO" in message
    assert message.endswith(
        "[done: dfl-port.0 programmed; failed: dfl-port.1; not attempted: dfl-port.2]"
    )
    assert [port.afu_id() for port in card.ports] == [AFU_2, AFU_1, AFU_1]


def test_the_progress_in_the_error_counts_a_skipped_port_as_done(
    node: SimNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = _card(node, ports=3)
    card.ports[0].afu_file.write_text(AFU_2 + "\n")
    bundle = _three_requests(node, tmp_path, card)
    _with_kernel(monkeypatch, FakeKernel(card, fail={2: errno.ENODEV}))

    with pytest.raises(ProgrammingError) as failure:
        run_prestart(parse_state(state_json(bundle).encode()), _settings(node))

    assert str(failure.value).endswith(
        "[done: dfl-port.0 skipped, dfl-port.1 programmed; failed: dfl-port.2]"
    )
    assert [port.afu_id() for port in card.ports] == [AFU_2, AFU_3, AFU_1]


def test_a_port_that_turns_unhealthy_while_waiting_for_the_lock_is_not_programmed(
    node: SimNode,
) -> None:
    card = _card(node)
    settings = _settings(node)
    assignment = _assignment(card, settings)
    survey([assignment.port], settings.busy_limit)  # healthy when the hook looked
    card.ports[0].afu_file.write_text(ALL_ONES + "\n")

    with pytest.raises(DeviceError, match="dfl-port.0 reports an all-ones AFU ID"):
        ensure_port(assignment, IoctlProgrammer(busy_limit(0.5), ioctl=FakeKernel(card)), settings)

    assert card.ports[0].afu_id() == ALL_ONES


# --- point 4: EBUSY on sysfs reads ---


def _failing_reads(
    monkeypatch: pytest.MonkeyPatch, code: int, times: int | None
) -> Callable[[], int]:
    """Make the first *times* reads of any afu_id fail with *code* (None: every read)."""
    real_read = sysfs._read_raw
    attempts = 0

    def read(path: Path) -> bytes:
        nonlocal attempts
        if path.name == "afu_id":
            attempts += 1
            if times is None or attempts <= times:
                raise OSError(code, os.strerror(code))
        return real_read(path)

    monkeypatch.setattr(sysfs, "_read_raw", read)
    return lambda: attempts


def test_ebusy_that_clears_after_a_few_reads_is_retried_and_the_port_programmed(
    node: SimNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = _card(node)
    settings = _settings(node)
    attempts = _failing_reads(monkeypatch, errno.EBUSY, times=3)

    programmer = IoctlProgrammer(busy_limit(0.5), ioctl=FakeKernel(card))

    outcome = ensure_port(_assignment(card, settings), programmer, settings).outcome

    assert outcome is Outcome.PROGRAMMED
    assert card.ports[0].afu_id() == AFU_2
    assert attempts() == 3 + 2  # three busy reads, the check under the lock, the verification


def test_ebusy_that_never_clears_fails_once_the_busy_timeout_has_passed(
    node: SimNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = _card(node)
    settings = _settings(node, busy_timeout=0.3)
    attempts = _failing_reads(monkeypatch, errno.EBUSY, times=None)
    programmer = IoctlProgrammer(busy_limit(0.3), ioctl=FakeKernel(card))

    started = time.monotonic()
    with pytest.raises(DeviceError) as failure:
        ensure_port(_assignment(card, settings), programmer, settings)
    elapsed = time.monotonic() - started

    assert "afu_id stayed busy (EBUSY) for 0.3 s" in str(failure.value)
    assert 0.3 <= elapsed < 2.0
    assert 3 <= attempts() <= 20  # a growing backoff, not a busy loop
    assert card.ports[0].afu_id() == AFU_1


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.EIO, "Input/output error"), (errno.EACCES, "Permission denied")],
    ids=["EIO", "EACCES"],
)
def test_read_errors_other_than_ebusy_fail_at_once_without_retrying(
    node: SimNode, monkeypatch: pytest.MonkeyPatch, code: int, reason: str
) -> None:
    card = _card(node)
    settings = _settings(node, busy_timeout=5.0)
    attempts = _failing_reads(monkeypatch, code, times=None)

    started = time.monotonic()
    with pytest.raises(DeviceError) as failure:
        ensure_port(_assignment(card, settings), DoesNothing(), settings)

    assert str(failure.value) == f"cannot read {card.ports[0].afu_file}: {reason}"
    assert attempts() == 1
    assert time.monotonic() - started < 1.0


def test_the_busy_timeout_is_read_from_its_environment_variable(node: SimNode) -> None:
    result = run_cli(["prestart"], node.env(FPGA_CRIHOOK_BUSY_TIMEOUT="soon"), "{}")

    assert result.returncode == ExitStatus.SETTINGS
    assert "Invalid value for '--busy-timeout'" in result.stderr


# --- point 7: dry run ---


@pytest.mark.parametrize(
    ("options", "extra_env"),
    [([], {"FPGA_CRIHOOK_DRY_RUN": "1"}), (["--dry-run"], {})],
    ids=["env", "option"],
)
def test_a_dry_run_checks_everything_and_programs_nothing(
    node: SimNode, tmp_path: Path, options: list[str], extra_env: dict[str, str]
) -> None:
    card = _card(node, ports=2)
    bundle = _bundle_asking_for_afu_2(tmp_path, card)

    result = run_cli([*options, "prestart"], node.env(**extra_env), state_json(bundle))

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    would = [e for e in events if e["event"] == "dry run: would program the port"]
    assert [(e["port"], e["afu_id"], e["bitstream"]) for e in would] == [
        ("dfl-port.0", AFU_2, str(_gbs(node)))
    ]
    assert [port.afu_id() for port in card.ports] == [AFU_1, AFU_1]


def test_a_dry_run_still_fails_on_a_broken_bitstream(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    card = _card(node)
    _gbs(node).write_bytes(_gbs(node).read_bytes()[:30])
    bundle = _bundle_asking_for_afu_2(tmp_path, card)

    result = run_hook(node, state_json(bundle), FPGA_CRIHOOK_DRY_RUN="true")

    assert result.returncode == ExitStatus.BITSTREAM_REFUSED
    assert "runs past the end" in result.stderr
    assert card.ports[0].afu_id() == AFU_1


def test_a_dry_run_checks_that_the_configured_programmer_can_run(
    node: SimNode, tmp_path: Path
) -> None:
    card = _card(node)
    bundle = _bundle_asking_for_afu_2(tmp_path, card)
    settings = _settings(
        node,
        dry_run=True,
        programmer=ProgrammerKind.FPGACONF,
        fpgaconf=str(tmp_path / "no-such-fpgaconf"),
    )

    with pytest.raises(SettingsError, match="no-such-fpgaconf"):
        run_prestart(parse_state(state_json(bundle).encode()), settings)

    assert card.ports[0].afu_id() == AFU_1


# --- the sim programmer never touches the real /sys ---


@pytest.mark.parametrize("sysfs_root", ["/sys", "/sys/", "/sys/../sys", "link-to-sys"])
def test_the_sim_programmer_refuses_the_real_sysfs(tmp_path: Path, sysfs_root: str) -> None:
    if sysfs_root == "link-to-sys":
        (tmp_path / "link").symlink_to("/sys")
        sysfs_root = str(tmp_path / "link")
    settings = Settings(sysfs=Path(sysfs_root), programmer=ProgrammerKind.SIM)

    with pytest.raises(SettingsError, match="only works on a simulated sysfs tree"):
        settings.check()
    with pytest.raises(SettingsError, match="only works on a simulated sysfs tree"):
        make_programmer(settings)


def test_the_installed_hook_with_the_sim_programmer_on_the_real_sysfs_is_refused(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    card = _card(node)
    bundle = _bundle_asking_for_afu_2(tmp_path, card)

    result = run_hook(node, state_json(bundle), FPGA_CRIHOOK_SYSFS="/sys")

    assert result.returncode == ExitStatus.SETTINGS
    errors = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["level"] for e in errors] == ["error"]
    assert "FPGA_CRIHOOK_SYSFS" in errors[0]["error"]
