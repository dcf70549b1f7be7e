"""hook: the prestart line in-process, on simulated nodes of both drivers."""

import dataclasses
import errno
import json
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, AFU_3, REGION_A, REGION_B
from simnode import SimCard, SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook import sysfs
from fpga_crihook.devices import port_from_sysfs_dir
from fpga_crihook.errors import BitstreamError, DeviceError, InputError, SettingsError
from fpga_crihook.hook import Outcome, ensure_port, run_prestart
from fpga_crihook.oci import parse_state
from fpga_crihook.plan import Assignment
from fpga_crihook.programmers import make_programmer
from fpga_crihook.requests import Request
from fpga_crihook.settings import ProgrammerKind, Settings


def _settings(node: SimNode, **changes: object) -> Settings:
    settings = Settings(
        sysfs=node.sysfs,
        devfs=node.devfs,
        bitstreams=node.store,
        programmer=ProgrammerKind.SIM,
        lock_dir=node.root / "locks",
        busy_timeout=0.1,
        lock_timeout=1,
    )
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


def _run(
    node: SimNode, tmp_path: Path, env: list[str], card: SimCard, **changes: object
) -> list[Outcome]:
    bundle = write_bundle(
        tmp_path / "bundle", env=env, devices=[port.device() for port in card.ports]
    )
    state = parse_state(state_json(bundle).encode())
    return [result.outcome for result in run_prestart(state, _settings(node, **changes))]


def _pair(suffix: str, region: str, afu: str) -> list[str]:
    return [f"FPGA_REGION_{suffix}={region}", f"FPGA_AFU_{suffix}={afu}"]


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_two_requests_on_a_two_port_card_are_both_programmed(
    node: SimNode, tmp_path: Path, driver: str
) -> None:
    card = add_card(node, driver, index=1, interface_id=REGION_B, afu_ids=[AFU_1, AFU_1])
    write_gbs(node, REGION_B, AFU_2)
    write_gbs(node, REGION_B, AFU_3)
    outcomes = _run(node, tmp_path, _pair("1", REGION_B, AFU_2) + _pair("2", REGION_B, AFU_3), card)
    assert outcomes == [Outcome.PROGRAMMED, Outcome.PROGRAMMED]
    assert [port.afu_id() for port in card.ports] == [AFU_2, AFU_3]


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_a_skipped_port_does_not_stop_the_next_request(
    node: SimNode, tmp_path: Path, driver: str
) -> None:
    card = add_card(node, driver, index=1, interface_id=REGION_B, afu_ids=[AFU_2, AFU_1])
    write_gbs(node, REGION_B, AFU_2)
    write_gbs(node, REGION_B, AFU_3)
    outcomes = _run(node, tmp_path, _pair("1", REGION_B, AFU_2) + _pair("2", REGION_B, AFU_3), card)
    assert outcomes == [Outcome.SKIPPED, Outcome.PROGRAMMED]
    assert [port.afu_id() for port in card.ports] == [AFU_2, AFU_3]


def test_the_port_already_holding_the_afu_is_the_one_kept(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=1, interface_id=REGION_B, afu_ids=[AFU_1, AFU_2])
    outcomes = _run(node, tmp_path, _pair("1", REGION_B, AFU_2), card)
    assert outcomes == [Outcome.SKIPPED]
    assert [port.afu_id() for port in card.ports] == [AFU_1, AFU_2]


def test_skip_needs_no_bitstream_in_the_store(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_2])
    assert _run(node, tmp_path, _pair("1", REGION_A, AFU_2), card) == [Outcome.SKIPPED]


def test_dry_run_checks_everything_and_programs_nothing(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    outcomes = _run(node, tmp_path, _pair("1", REGION_A, AFU_2), card, dry_run=True)
    assert outcomes == [Outcome.WOULD_PROGRAM]
    assert card.ports[0].afu_id() == AFU_1


def test_no_bitstream_is_an_error_naming_the_expected_files(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    with pytest.raises(BitstreamError, match=f"expected {REGION_A}/{AFU_2}.gbs or"):
        _run(node, tmp_path, _pair("1", REGION_A, AFU_2), card)


def test_bitstream_for_another_afu_under_the_requested_name_is_refused(
    node: SimNode, tmp_path: Path
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    wrong = write_gbs(node, REGION_A, AFU_3)
    wrong.rename(wrong.with_name(f"{AFU_2}.gbs"))
    with pytest.raises(BitstreamError, match=f"holds AFU {AFU_3}, not the requested {AFU_2}"):
        _run(node, tmp_path, _pair("1", REGION_A, AFU_2), card)
    assert card.ports[0].afu_id() == AFU_1


def test_bitstream_for_another_region_is_refused(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    wrong = write_gbs(node, REGION_B, AFU_2)
    target = node.store / REGION_A / wrong.name
    target.parent.mkdir(parents=True)
    wrong.rename(target)
    with pytest.raises(BitstreamError, match=f"built for region {REGION_B}"):
        _run(node, tmp_path, _pair("1", REGION_A, AFU_2), card)


def test_port_of_another_region_is_not_used(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_B, AFU_2)
    with pytest.raises(DeviceError, match=f"their interface IDs: dfl-port.0: {REGION_A}"):
        _run(node, tmp_path, _pair("1", REGION_B, AFU_2), card)


def test_container_without_annotation_is_left_alone(node: SimNode, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle", env=None, devices=None)
    state = parse_state(state_json(bundle, annotated=False).encode())
    assert run_prestart(state, _settings(node)) == []


@pytest.mark.parametrize(
    ("env", "port_given", "words"),
    [
        (None, True, "'process.env' is missing or empty"),
        ([], True, "'process.env' is missing or empty"),
        (["HOME=/root"], True, "has the FPGA region annotation but no FPGA_REGION_N / FPGA_AFU_N"),
        (["FPGA_REGION_1=x"], False, "'linux.devices' is missing or empty"),
    ],
)
def test_region_container_needs_both_a_request_and_a_port(
    node: SimNode, tmp_path: Path, env: list[str] | None, port_given: bool, words: str
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    devices = [card.ports[0].device()] if port_given else None
    bundle = write_bundle(tmp_path / "bundle", env=env, devices=devices)
    with pytest.raises(InputError, match=words):
        run_prestart(parse_state(state_json(bundle).encode()), _settings(node))
    assert card.ports[0].afu_id() == AFU_1


@pytest.mark.parametrize(
    ("env", "devices"),
    [
        (None, None),
        ([], []),
        (
            ["PATH=/bin", "HOME=/root"],
            [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
        ),
    ],
)
def test_annotated_container_with_no_port_and_no_request_is_left_alone(
    node: SimNode, tmp_path: Path, env: list[str] | None, devices: list[dict[str, object]] | None
) -> None:
    """CRI-O copies the pod's annotations into each container: a sidecar has the annotation."""
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(tmp_path / "bundle", env=env, devices=devices)
    assert run_prestart(parse_state(state_json(bundle).encode()), _settings(node)) == []


def test_region_container_without_fpga_ports_is_an_error(node: SimNode, tmp_path: Path) -> None:
    bundle = write_bundle(
        tmp_path / "bundle",
        env=_pair("1", REGION_A, AFU_1),
        devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}],
    )
    with pytest.raises(InputError, match="none of its linux.devices is an FPGA port"):
        run_prestart(parse_state(state_json(bundle).encode()), _settings(node))


def test_ports_not_given_to_the_container_are_never_touched(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=1, interface_id=REGION_B, afu_ids=[AFU_1, AFU_1])
    write_gbs(node, REGION_B, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=_pair("1", REGION_B, AFU_2) + _pair("2", REGION_B, AFU_2),
        devices=[card.ports[1].device()],
    )
    with pytest.raises(DeviceError, match="no free FPGA port"):
        run_prestart(parse_state(state_json(bundle).encode()), _settings(node))
    assert card.ports[0].afu_id() == AFU_1


def test_config_json_is_ignored_beyond_env_and_devices(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=_pair("1", REGION_A, AFU_2),
        devices=[card.ports[0].device()],
        extra={"hooks": {"prestart": [{"path": 1}]}, "x-vendor": [None]},
    )
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    (bundle / "config.json").write_text(json.dumps(config))
    outcomes = run_prestart(parse_state(state_json(bundle).encode()), _settings(node))
    assert [result.outcome for result in outcomes] == [Outcome.PROGRAMMED]


def test_port_that_crashed_after_the_survey_is_not_programmed(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=["f" * 32])
    write_gbs(node, REGION_A, AFU_2)
    settings = _settings(node)
    port = port_from_sysfs_dir(card.ports[0].sysfs_dir, settings)
    assignment = Assignment(Request("1", REGION_A, AFU_2), port)
    with pytest.raises(DeviceError, match="all-ones AFU ID"):
        ensure_port(assignment, make_programmer(settings), settings)
    assert card.ports[0].afu_id() == "f" * 32


def test_a_port_busy_during_the_survey_is_read_again_under_the_lock(
    node: SimNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_2])
    real_read = sysfs._read_raw
    busy_reads = iter([True, False])  # the survey's read is busy, the one under the lock not

    def read(path: Path) -> bytes:
        if path.name == "afu_id" and next(busy_reads, False):
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real_read(path)

    monkeypatch.setattr(sysfs, "_read_raw", read)
    outcomes = _run(node, tmp_path, _pair("1", REGION_A, AFU_2), card, busy_timeout=0)
    assert outcomes == [Outcome.SKIPPED]


def test_a_missing_fpgaconf_only_matters_when_a_port_needs_programming(
    node: SimNode, tmp_path: Path
) -> None:
    card = add_card(node, "dfl", index=1, interface_id=REGION_B, afu_ids=[AFU_2, AFU_1])
    write_gbs(node, REGION_B, AFU_3)
    absent = {"programmer": ProgrammerKind.FPGACONF, "fpgaconf": str(tmp_path / "no-fpgaconf")}

    assert _run(node, tmp_path, _pair("1", REGION_B, AFU_2), card, **absent) == [Outcome.SKIPPED]
    with pytest.raises(SettingsError, match="no-fpgaconf"):
        _run(
            node,
            tmp_path,
            _pair("1", REGION_B, AFU_2) + _pair("2", REGION_B, AFU_3),
            card,
            **absent,
        )
    assert [port.afu_id() for port in card.ports] == [AFU_2, AFU_1]
