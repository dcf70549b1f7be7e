"""``check`` through the installed CLI: hooks.d files and the node."""

import json
import os
from pathlib import Path

import pytest
from helpers import AFU_1, HOOK, REGION_A, REGION_B, REPO, run_cli, run_on, two_drivers
from simnode import SimNode, write_gbs

from fpga_crihook.ids import UNHEALTHY_ID


def _hooks_file(tmp_path: Path, **changes: object) -> Path:
    document = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
    document["hook"]["path"] = str(HOOK)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        place = document
        for key in parents:
            place = place[key]
        if value is None:
            del place[last]
        else:
            place[last] = value
    path = tmp_path / "hooks.d" / "fpga.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def _healthy_node(node: SimNode) -> None:
    two_drivers(node)
    write_gbs(node, REGION_A, AFU_1)
    write_gbs(node, REGION_B, AFU_1)


def test_check_passes_a_valid_hooks_file_on_a_good_node(node: SimNode, tmp_path: Path) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path)

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert all(line.startswith("ok: ") for line in lines), lines
    assert f"ok: {hooks_file}: valid hooks.d 1.0.0 file for fpga-crihook" in lines
    assert f"ok: dfl driver: 1 card(s) under {node.sysfs}/class/fpga_region" in lines
    assert f"ok: opae driver: 1 card(s) under {node.sysfs}/class/fpga" in lines
    assert f"ok: bitstream store {node.store}: 2 bitstream(s)" in lines


def test_check_without_files_checks_the_shipped_hooks_file(node: SimNode) -> None:
    _healthy_node(node)

    result = run_on(node, "check")

    # The shipped file points at the packaged install path, absent on this machine.
    assert result.returncode == 1
    assert "intel-fpga-crihook.json: hook.path /opt/intel/fpga-crihook/bin/fpga-crihook" in (
        result.stdout
    )


def test_shipped_hooks_file_is_the_repository_one() -> None:
    shipped = REPO / "fpga_crihook" / "data" / "intel-fpga-crihook.json"

    assert shipped.read_bytes() == (REPO / "hooks.d" / "intel-fpga-crihook.json").read_bytes()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"version": "2.0.0"}, "at version: '1.0.0' was expected"),
        ({"stages": None}, "at top level: 'stages' is a required property"),
        ({"stages": ["prestart", "beforeStart"]}, "at stages/1: 'beforeStart' is not one of"),
        ({"hook__path": "bin/fpga-crihook"}, "at hook/path: 'bin/fpga-crihook' does not match"),
        ({"hook__env": ["PATH"]}, "at hook/env/0: 'PATH' does not match"),
        ({"hook__timeout": 0}, "at hook/timeout: 0 is less than the minimum of 1"),
        ({"when": {}}, "at when: {} is not valid under any of the given schemas"),
        ({"stage": ["prestart"]}, "Additional properties are not allowed ('stage' was unexpected)"),
    ],
)
def test_check_reports_format_errors(
    node: SimNode, tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, **changes)

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert any(expected in line for line in errors), errors
    assert all(line.startswith(f"error: {hooks_file}: breaks the hooks.d") for line in errors)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"^com\\.intel\\.fpga\\.mode$": "^(fpga\\.intel\\.com/region$"}, "does not compile"),
        (
            {"^com\\.intel\\.fpga\\.mode$": "^fpga\\.intel\\.com/region$"},
            "does not match 'intel.com/fpga-region'",
        ),
        ({"^io\\.kubernetes\\.pod\\.name$": ".*"}, "no when.annotations key matches"),
    ],
)
def test_check_reports_annotation_problems(
    node: SimNode, tmp_path: Path, annotations: dict[str, str], expected: str
) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, when__annotations=annotations)

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 1
    assert any(
        line.startswith(f"error: {hooks_file}: ") and expected in line
        for line in result.stdout.splitlines()
    ), result.stdout


def test_check_warns_about_unanchored_regexes(node: SimNode, tmp_path: Path) -> None:
    _healthy_node(node)
    annotations = {"com\\.intel\\.fpga\\.mode": "fpga\\.intel\\.com/region|intel\\.com/fpga-region"}
    hooks_file = _hooks_file(tmp_path, when__annotations=annotations)

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert all("is not anchored (^...$)" in line for line in warnings)


@pytest.mark.parametrize(("condition", "value"), [("always", False), ("hasBindMounts", False)])
def test_check_reports_a_false_condition_that_keeps_the_hook_from_ever_running(
    node: SimNode, tmp_path: Path, condition: str, value: bool
) -> None:
    """containers/common ANDs the conditions, and a false ``always`` or ``hasBindMounts``
    never matches: the runtime would inject the hook into no container at all."""
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, **{f"when__{condition}": value})

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 1
    assert (
        f"error: {hooks_file}: when.{condition} is false, which never matches: "
        "the runtime would run the hook for no container" in result.stdout.splitlines()
    ), result.stdout


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("hasBindMounts", True, "only for containers with bind mounts"),
        ("commands", [".*/sh$"], "only for containers whose process.args[0] matches"),
    ],
)
def test_check_warns_about_conditions_that_narrow_the_annotation(
    node: SimNode, tmp_path: Path, condition: str, value: object, expected: str
) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, **{f"when__{condition}": value})

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, result.stdout
    assert expected in warnings[0]
    assert "FPGA region containers without it start unprogrammed" in warnings[0]


def test_check_warns_when_the_hooks_file_points_the_hook_at_another_store(
    node: SimNode, tmp_path: Path
) -> None:
    _healthy_node(node)
    elsewhere = tmp_path / "other-store"
    env = ["FPGA_CRIHOOK_LOG_LEVEL=info", f"FPGA_CRIHOOK_BITSTREAMS={elsewhere}"]
    hooks_file = _hooks_file(tmp_path, hook__env=env)

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    assert (
        f"warning: {hooks_file}: hook.env sets FPGA_CRIHOOK_BITSTREAMS={elsewhere}, "
        f"but this check looked at {node.store} (--bitstreams checks what the hook uses)"
        in result.stdout.splitlines()
    ), result.stdout


def test_check_warns_when_the_hooks_file_asks_for_events_on_stderr(
    node: SimNode, tmp_path: Path
) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, hook__env=["FPGA_CRIHOOK_LOG_LEVEL=info"])

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    [warning] = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(f"warning: {hooks_file}: hook.env sets FPGA_CRIHOOK_LOG_LEVEL, ")
    assert "runc pastes all of stderr into a failed pod's error" in warning


def test_check_reports_hook_path_stage_and_args_problems(node: SimNode, tmp_path: Path) -> None:
    _healthy_node(node)
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    hooks_file = _hooks_file(
        tmp_path, hook__path=str(script), hook__args=["fpga-crihook"], stages=["poststop"]
    )

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {hooks_file}: stages ['poststop'] include neither prestart nor createRuntime: "
        "the accelerator would not be in place when the container starts",
        f"error: {hooks_file}: hook.path {script} is not executable",
        f"error: {hooks_file}: hook.args ['fpga-crihook'] do not name the prestart command "
        '(expected e.g. ["fpga-crihook", "prestart"])',
    ]


def test_check_reports_a_file_that_is_not_json(node: SimNode, tmp_path: Path) -> None:
    _healthy_node(node)
    broken = tmp_path / "broken.json"
    broken.write_text("{")

    result = run_on(node, "check", str(broken))

    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: {broken} is not valid JSON")


def test_check_reports_fifos_instead_of_waiting_for_a_writer(node: SimNode, tmp_path: Path) -> None:
    dfl, _ = two_drivers(node)
    node.store.mkdir()
    hooks_fifo = tmp_path / "fifo.json"
    cdi_fifo = tmp_path / "fifo.yaml"
    for fifo in (hooks_fifo, cdi_fifo):
        os.mkfifo(fifo)
    dfl.ports[0].afu_file.unlink()
    os.mkfifo(dfl.ports[0].afu_file)

    result = run_on(node, "check", str(hooks_fifo), str(cdi_fifo))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"error: {hooks_fifo} is not a regular file" in lines
    assert f"error: {cdi_fifo} is not a regular file" in lines
    assert any(f"{dfl.ports[0].afu_file}: '' is not a 32-hex-digit ID" in line for line in lines)


def test_check_reports_node_problems(node: SimNode, tmp_path: Path) -> None:
    dfl, _ = two_drivers(node)
    (node.devfs / "dfl-fme.0").unlink()
    dfl.ports[1].afu_file.write_text(UNHEALTHY_ID + "\n")

    result = run_on(node, "check", str(_hooks_file(tmp_path)))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert (
        f"error: dfl card region0 (0000:5e:00.0): FME device node {node.devfs}/dfl-fme.0 "
        "is missing: nothing can be programmed on this card"
    ) in lines
    assert (
        "error: dfl card region0 (0000:5e:00.0): unhealthy: it reports all-ones IDs: "
        "the firmware has crashed"
    ) in lines
    assert f"error: bitstream store {node.store} is missing or not readable" in lines


@pytest.mark.parametrize("programmer", ["fpgaconf", "ioctl"])
def test_check_warns_that_fpgaconf_cannot_program_the_other_ports_of_an_fme(
    node: SimNode, tmp_path: Path, programmer: str
) -> None:
    _healthy_node(node)  # a two-port DFL card and a one-port OPAE card

    result = run_cli(
        ["check", str(_hooks_file(tmp_path))], node.env(FPGA_CRIHOOK_PROGRAMMER=programmer)
    )

    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    if programmer == "ioctl":
        assert warnings == []
    else:
        assert warnings == [
            "warning: dfl card region0 (0000:5e:00.0): the fpgaconf programmer always "
            "programs port 0 of the FME, so the hook refuses dfl-port.1 "
            "(FPGA_CRIHOOK_PROGRAMMER=ioctl programs every port)"
        ]


def test_check_on_a_node_without_cards_is_an_error(node: SimNode, tmp_path: Path) -> None:
    node.store.mkdir()

    result = run_on(node, "check", str(_hooks_file(tmp_path)))

    assert result.returncode == 1
    assert f"error: no FPGA cards under {node.sysfs}" in result.stdout
