"""``check`` on hooks.d files: the 1.0.0 format, then what the hook needs of one."""

from pathlib import Path

import pytest
from checkfiles import healthy_node, hooks_file_with
from helpers import run_on
from simnode import SimNode


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
    healthy_node(node)
    hooks_file = hooks_file_with(tmp_path, **changes)

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
    healthy_node(node)
    hooks_file = hooks_file_with(tmp_path, when__annotations=annotations)

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 1
    assert any(
        line.startswith(f"error: {hooks_file}: ") and expected in line
        for line in result.stdout.splitlines()
    ), result.stdout


def test_check_warns_about_unanchored_regexes(node: SimNode, tmp_path: Path) -> None:
    healthy_node(node)
    annotations = {"com\\.intel\\.fpga\\.mode": "fpga\\.intel\\.com/region|intel\\.com/fpga-region"}
    hooks_file = hooks_file_with(tmp_path, when__annotations=annotations)

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
    healthy_node(node)
    hooks_file = hooks_file_with(tmp_path, **{f"when__{condition}": value})

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
    healthy_node(node)
    hooks_file = hooks_file_with(tmp_path, **{f"when__{condition}": value})

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, result.stdout
    assert expected in warnings[0]
    assert "FPGA region containers without it start unprogrammed" in warnings[0]


def test_check_warns_when_the_hooks_file_points_the_hook_at_another_store(
    node: SimNode, tmp_path: Path
) -> None:
    healthy_node(node)
    elsewhere = tmp_path / "other-store"
    env = ["FPGA_CRIHOOK_LOG_LEVEL=info", f"FPGA_CRIHOOK_BITSTREAMS={elsewhere}"]
    hooks_file = hooks_file_with(tmp_path, hook__env=env)

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
    healthy_node(node)
    hooks_file = hooks_file_with(tmp_path, hook__env=["FPGA_CRIHOOK_LOG_LEVEL=info"])

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    [warning] = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(f"warning: {hooks_file}: hook.env sets FPGA_CRIHOOK_LOG_LEVEL, ")
    assert "runc pastes all of stderr into a failed pod's error" in warning


def test_check_reports_hook_path_stage_and_args_problems(node: SimNode, tmp_path: Path) -> None:
    healthy_node(node)
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    hooks_file = hooks_file_with(
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
    healthy_node(node)
    broken = tmp_path / "broken.json"
    broken.write_text("{")

    result = run_on(node, "check", str(broken))

    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: {broken} is not valid JSON")


def test_check_keeps_a_finding_on_one_line_when_its_path_holds_a_newline(
    node: SimNode, tmp_path: Path
) -> None:
    healthy_node(node)
    directory = tmp_path / "a\nok: forged"
    directory.mkdir()
    hooks_file = directory / "hooks.json"
    hooks_file.write_text('{"version": "2.0.0"}')

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 1
    assert not any(line.startswith("ok: forged") for line in result.stdout.splitlines())
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert errors
    assert all("a\\nok: forged/hooks.json: breaks the hooks.d" in line for line in errors), errors
