"""``check`` on CDI specs: the 0.5.0 format where it applies, and the hooks that run us."""

from pathlib import Path
from typing import Any

import pytest
from checkfiles import INTEL_KIND, dfl_card, generated_spec, intel_spec, lines_at, write_spec
from helpers import DROP_IN, HOOK, run_on
from simnode import SimNode


def test_check_passes_a_generated_spec(node: SimNode, tmp_path: Path) -> None:
    dfl_card(node)
    spec = write_spec(tmp_path / "cdi" / "fpga.json", generated_spec(node))

    result = run_on(node, "check", str(spec))

    assert result.returncode == 0, result.stdout
    assert lines_at(result, "warning") == []
    assert (
        f"ok: {spec}: CDI spec (cdiVersion 0.5.0, kind intel.com/fpga) runs fpga-crihook "
        "at createRuntime" in result.stdout.splitlines()
    )


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_check_passes_intels_spec_with_the_drop_in(
    node: SimNode, tmp_path: Path, suffix: str
) -> None:
    dfl_card(node)
    spec = write_spec(tmp_path / f"intel{suffix}", intel_spec())

    result = run_on(node, "check", str(spec))

    assert result.returncode == 0, result.stdout
    assert f"ok: {spec}: CDI spec (cdiVersion 0.5.0, kind {INTEL_KIND}) runs fpga-crihook" in (
        result.stdout
    )


def test_check_says_how_to_install_a_missing_drop_in(node: SimNode, tmp_path: Path) -> None:
    dfl_card(node)
    missing = tmp_path / "opt" / "intel" / "fpga-sw" / "intel-fpga-crihook"
    spec = write_spec(tmp_path / "intel.json", intel_spec(missing))

    result = run_on(node, "check", str(spec))

    assert result.returncode == 1
    assert lines_at(result, "error") == [
        f"error: {spec}: device 'dfl-fme.0': hook {missing} does not exist (the "
        "intel-fpga-crihook image puts the drop-in there as the init container of Intel's FPGA "
        "plugin DaemonSet)"
    ]


def test_check_reports_a_hook_that_runs_too_late_or_cannot_run(
    node: SimNode, tmp_path: Path
) -> None:
    dfl_card(node)
    script = tmp_path / "fpga-crihook"
    script.write_text("#!/bin/sh\n")
    spec = generated_spec(node)
    spec["containerEdits"]["hooks"][0].update(hookName="poststart", path=str(script))
    path = write_spec(tmp_path / "fpga.json", spec)

    result = run_on(node, "check", str(path))

    assert result.returncode == 1
    where = f"error: {path}: containerEdits: hook {script}"
    assert lines_at(result, "error") == [
        f"{where} runs at poststart, neither prestart nor createRuntime: the accelerator "
        "would not be in place when the container starts",
        f"{where} is not executable",
    ]


def test_check_warns_about_our_spec_without_the_cdi_argument(node: SimNode, tmp_path: Path) -> None:
    dfl_card(node)
    spec = generated_spec(node)
    spec["containerEdits"]["hooks"][0]["args"] = ["fpga-crihook", "createRuntime"]
    path = write_spec(tmp_path / "fpga.json", spec)

    result = run_on(node, "check", str(path))

    assert result.returncode == 0, result.stdout
    assert lines_at(result, "warning") == [
        f"warning: {path}: containerEdits: hook {HOOK}: args ['fpga-crihook', 'createRuntime'] "
        "lack --cdi: a container given a device of kind intel.com/fpga without the FPGA region "
        "annotation starts without its accelerator programmed"
    ]


def test_check_warns_about_a_cdi_hook_env_that_puts_events_on_stderr(
    node: SimNode, tmp_path: Path
) -> None:
    dfl_card(node)
    spec = generated_spec(node)
    spec["containerEdits"]["hooks"][0]["env"].append("FPGA_CRIHOOK_LOG_LEVEL=debug")
    path = write_spec(tmp_path / "fpga.json", spec)

    result = run_on(node, "check", str(path))

    assert result.returncode == 0, result.stdout
    assert lines_at(result, "warning") == [
        f"warning: {path}: hook.env sets FPGA_CRIHOOK_LOG_LEVEL, which puts the hook's JSON "
        "events on stderr too, and runc pastes all of stderr into a failed pod's error: "
        "leave it out (the journal and the log file get the events without it)"
    ]


@pytest.mark.parametrize(
    ("timeout", "env", "deadline"),
    [
        (60, [], "80 s (FPGA_CRIHOOK_DEADLINE is not in its env)"),
        (90, ["FPGA_CRIHOOK_DEADLINE=100"], "100 s (its env sets FPGA_CRIHOOK_DEADLINE=100)"),
    ],
)
def test_check_warns_about_a_cdi_hook_timeout_not_above_the_deadline(
    node: SimNode, tmp_path: Path, timeout: int, env: list[str], deadline: str
) -> None:
    dfl_card(node)
    spec = intel_spec(timeout=timeout, env=env)
    path = write_spec(tmp_path / "cdi" / "intel.json", spec)
    roomy = write_spec(tmp_path / "cdi" / "roomy.json", intel_spec(timeout=101, env=env))

    result = run_on(node, "check", str(path))
    passed = run_on(node, "check", str(roomy))

    assert lines_at(result, "warning") == [
        f"warning: {path}: device 'dfl-fme.0': hook {DROP_IN}: timeout {timeout} s is not "
        f"above the hook's deadline of {deadline}: the runtime may kill the hook in the "
        "middle of programming; set the timeout above the deadline"
    ]
    assert lines_at(passed, "warning") == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda spec: spec.update(annotations={"a": "b"}), "Additional properties are not allowed"),
        (lambda spec: spec.update(kind="intel.com/fpga.x"), "at kind: 'intel.com/fpga.x' does not"),
        (lambda spec: spec["devices"][0].update(name="dfl/port"), "at devices/0/name:"),
        (lambda spec: spec["devices"][0].update(containerEdits={}), "at devices/0/containerEdits"),
        (
            lambda spec: spec["containerEdits"]["hooks"][0].update(hookName="preStart"),
            "at containerEdits/hooks/0/hookName: 'preStart' is not one of",
        ),
        (
            lambda spec: spec["containerEdits"]["hooks"][0].update(env=["FPGA_CRIHOOK_SYSFS"]),
            "at containerEdits/hooks/0/env/0: 'FPGA_CRIHOOK_SYSFS' does not match",
        ),
        (
            lambda spec: spec["devices"][0]["containerEdits"]["deviceNodes"][0].update(type="x"),
            "at devices/0/containerEdits/deviceNodes/0/type: 'x' is not one of",
        ),
        (lambda spec: spec.update(devices=[]), "at devices: [] should be non-empty"),
    ],
)
def test_check_reports_a_spec_the_runtime_would_drop(
    node: SimNode, tmp_path: Path, change: Any, words: str
) -> None:
    dfl_card(node)
    spec = generated_spec(node)
    change(spec)
    path = write_spec(tmp_path / "fpga.json", spec)

    result = run_on(node, "check", str(path))

    assert result.returncode == 1
    errors = lines_at(result, "error")
    assert any(words in line for line in errors), errors
    assert all(
        line.startswith(f"error: {path}: breaks the CDI 0.5.0 format at ")
        and line.endswith("(the runtime would ignore the whole file)")
        for line in errors
    ), errors


def test_check_reads_hooks_of_other_cdi_versions(node: SimNode, tmp_path: Path) -> None:
    dfl_card(node)
    spec = intel_spec(tmp_path / "gone" / "intel-fpga-crihook")
    spec.update(cdiVersion="0.6.0", annotations={"made-by": "someone"})
    path = write_spec(tmp_path / "intel.json", spec)

    result = run_on(node, "check", str(path))

    assert result.returncode == 1
    assert lines_at(result, "warning") == [
        f"warning: {path}: cdiVersion '0.6.0': fpga-crihook knows the CDI 0.5.0 format only, "
        "so only the hooks were checked"
    ]
    assert f"hook {tmp_path / 'gone' / 'intel-fpga-crihook'} does not exist" in result.stdout


def test_check_warns_about_device_nodes_the_node_lacks(node: SimNode, tmp_path: Path) -> None:
    dfl_card(node)
    spec = generated_spec(node)
    path = write_spec(tmp_path / "fpga.json", spec)
    (node.devfs / "dfl-port.1").unlink()

    result = run_on(node, "check", str(path))

    assert lines_at(result, "warning") == [
        f"warning: {path}: {node.devfs / 'dfl-port.1'} (device dfl-port.1, all) does not "
        "exist on this node: regenerate the spec (fpga-crihook cdi generate)"
    ]
