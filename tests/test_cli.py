"""The installed ``fpga-crihook`` in a subprocess, configured by environment variables."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    AFU_1,
    AFU_2,
    AFU_3,
    REGION_A,
    REGION_B,
    RunHook,
    run_cli,
    run_on,
    run_prestart_with_a_bug,
)
from simnode import (
    SimNode,
    SimPort,
    add_card,
    containerd_annotations,
    crio_annotations,
    state_json,
    write_bundle,
    write_gbs,
)

from fpga_crihook.errors import ExitStatus


def _pair(suffix: str, region: str, afu: str) -> list[str]:
    return [f"FPGA_REGION_{suffix}={region}", f"FPGA_AFU_{suffix}={afu}"]


def _one_port_asking_for_afu_2(node: SimNode, tmp_path: Path, driver: str) -> tuple[SimPort, Path]:
    """A card whose one port holds AFU_1, AFU_2 in the store, a bundle asking for it."""
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle", env=_pair("1", REGION_A, AFU_2), devices=[card.ports[0].device()]
    )
    return card.ports[0], bundle


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines()]


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_port_is_programmed_then_skipped(
    node: SimNode, tmp_path: Path, run_hook: RunHook, driver: str
) -> None:
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle", env=_pair("1", REGION_A, AFU_2), devices=[card.ports[0].device()]
    )
    state = state_json(
        bundle, annotations={"io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "pod-1"}
    )

    first = run_hook(node, state)
    second = run_hook(node, state)

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert card.ports[0].afu_id() == AFU_2
    programmed = _events(first.stderr)[-1]
    assert programmed["event"] == "port programmed"
    assert programmed["port"] == card.ports[0].name
    assert (programmed["interface_id"], programmed["afu_id"]) == (REGION_A, AFU_2)
    assert (programmed["container_id"], programmed["pod_namespace"], programmed["pod_name"]) == (
        "c0ffee",
        "ns",
        "pod-1",
    )
    assert isinstance(programmed["duration_ms"], float)
    assert _events(second.stderr)[-1]["event"] == "port already holds the AFU: skipped"
    assert first.stdout == second.stdout == ""


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_one_right_port_and_one_to_program(
    node: SimNode, tmp_path: Path, run_hook: RunHook, driver: str
) -> None:
    card = add_card(node, driver, index=1, interface_id=REGION_B, afu_ids=[AFU_2, AFU_1])
    write_gbs(node, REGION_B, AFU_3)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=_pair("1", REGION_B, AFU_2) + _pair("2", REGION_B, AFU_3),
        devices=[port.device() for port in card.ports],
    )

    result = run_hook(node, state_json(bundle))

    assert result.returncode == 0, result.stderr
    assert [port.afu_id() for port in card.ports] == [AFU_2, AFU_3]
    assert [event["event"] for event in _events(result.stderr)][1:] == [
        "port already holds the AFU: skipped",
        "port programmed",
    ]


def test_not_annotated_container_exits_0_and_logs_only_at_debug(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    bundle = write_bundle(tmp_path / "bundle", env=None, devices=None)
    quiet = run_hook(node, state_json(bundle, annotated=False))
    verbose = run_hook(node, state_json(bundle, annotated=False), FPGA_CRIHOOK_LOG_LEVEL="debug")
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert verbose.returncode == 0
    [event] = _events(verbose.stderr)
    assert (event["level"], event["event"]) == (
        "debug",
        "not an FPGA region container: nothing to do",
    )


REGION_MODE = {"com.intel.fpga.mode": "fpga.intel.com/region"}


def test_sidecar_of_an_annotated_crio_pod_exits_0_with_an_info_event(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    """CRI-O copies the pod's region annotation into every container of the pod."""
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(tmp_path / "bundle", env=["PATH=/bin", "TOKEN=s3cret"], devices=None)
    state = state_json(
        bundle,
        annotated=False,
        annotations=crio_annotations("ns", "pod-1", "log-shipper", REGION_MODE),
    )

    quiet = run_cli(["prestart"], node.quiet_env(), state)
    shown = run_hook(node, state)

    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert shown.returncode == 0
    [event] = _events(shown.stderr)
    assert event["level"] == "info"
    assert event["event"] == (
        "no FPGA port and no FPGA_REGION_N / FPGA_AFU_N variables: nothing to do "
        "(another container of an FPGA pod)"
    )
    assert (event["pod_name"], event["container_name"]) == ("pod-1", "log-shipper")
    assert "s3cret" not in shown.stderr


@pytest.mark.parametrize(
    "annotations",
    [
        crio_annotations("ns", "pod-1", "main", REGION_MODE),
        {**containerd_annotations("ns", "pod-1", "main"), **REGION_MODE},
    ],
    ids=["cri-o", "containerd"],
)
def test_every_event_names_the_pod_and_container_from_either_engine(
    node: SimNode, tmp_path: Path, run_hook: RunHook, annotations: dict[str, str]
) -> None:
    _, bundle = _one_port_asking_for_afu_2(node, tmp_path, "dfl")

    result = run_hook(node, state_json(bundle, annotated=False, annotations=annotations))

    assert result.returncode == 0, result.stderr
    events = _events(result.stderr)
    assert [event["event"] for event in events] == ["hook started", "port programmed"]
    for event in events:
        assert (event["pod_namespace"], event["pod_name"], event["container_name"]) == (
            "ns",
            "pod-1",
            "main",
        )


def test_events_say_null_for_a_pod_no_engine_annotation_names(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    _, bundle = _one_port_asking_for_afu_2(node, tmp_path, "dfl")

    result = run_hook(node, state_json(bundle))

    assert result.returncode == 0, result.stderr
    programmed = _events(result.stderr)[-1]
    assert list(programmed)[3:7] == ["container_id", "pod_namespace", "pod_name", "container_name"]
    assert (programmed["pod_namespace"], programmed["pod_name"]) == (None, None)
    assert programmed["container_name"] is None


def test_failure_is_one_error_event_and_its_classs_exit_status(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(
        tmp_path / "bundle", env=_pair("1", REGION_A, AFU_2), devices=[card.ports[0].device()]
    )
    result = run_hook(node, state_json(bundle))
    assert result.returncode == ExitStatus.NO_BITSTREAM
    errors = [event for event in _events(result.stderr) if event["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["event"] == "prestart failed"
    assert "no bitstream for region" in str(errors[0]["error"])
    assert "Traceback" not in result.stderr
    assert card.ports[0].afu_id() == AFU_1


def test_an_unexpected_failure_is_still_the_one_prestart_failed_event(
    node: SimNode, tmp_path: Path
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(
        tmp_path / "bundle", env=_pair("1", REGION_A, AFU_2), devices=[card.ports[0].device()]
    )
    result = run_prestart_with_a_bug(node.env(), state_json(bundle))
    assert result.returncode == ExitStatus.INTERNAL
    [error] = _events(result.stderr)
    assert error["event"] == "prestart failed"
    assert error["error"] == "internal error: ZeroDivisionError: division by zero"


def test_create_runtime_alias_and_console_logs_and_log_file(node: SimNode, tmp_path: Path) -> None:
    port, bundle = _one_port_asking_for_afu_2(node, tmp_path, "opae")
    log_file = tmp_path / "hook.log"
    env = node.env(FPGA_CRIHOOK_LOG_FORMAT="console", FPGA_CRIHOOK_LOG_FILE=str(log_file))

    result = run_cli(["createRuntime"], env, state_json(bundle))

    assert result.returncode == 0, result.stderr
    assert "port programmed" in result.stderr
    assert not result.stderr.lstrip().startswith("{")
    assert log_file.read_text() == result.stderr
    assert port.afu_id() == AFU_2


def test_dry_run_from_the_environment(node: SimNode, tmp_path: Path, run_hook: RunHook) -> None:
    port, bundle = _one_port_asking_for_afu_2(node, tmp_path, "dfl")
    result = run_hook(node, state_json(bundle), FPGA_CRIHOOK_DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    assert _events(result.stderr)[-1]["event"] == "dry run: would program the port"
    assert port.afu_id() == AFU_1


def test_ioctl_against_a_regular_file_node_is_a_programming_failure(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    port, bundle = _one_port_asking_for_afu_2(node, tmp_path, "dfl")
    result = run_hook(node, state_json(bundle), FPGA_CRIHOOK_PROGRAMMER="ioctl")
    assert result.returncode == ExitStatus.PROGRAMMING
    [error] = [event for event in _events(result.stderr) if event["level"] == "error"]
    assert "ENOTTY" in str(error["error"])
    assert "dfl-fme.0" in str(error["error"])
    assert port.afu_id() == AFU_1


def test_sim_programmer_on_the_real_sysfs_is_refused(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle", env=None, devices=None)
    result = run_cli(["prestart"], {"FPGA_CRIHOOK_PROGRAMMER": "sim"}, state_json(bundle))
    assert result.returncode == ExitStatus.SETTINGS
    assert "only works on a simulated sysfs tree" in result.stderr


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"FPGA_CRIHOOK_PROGRAMMER": "magic"}, "'magic' is not one of"),
        ({"FPGA_CRIHOOK_LOCK_TIMEOUT": "soon"}, "'soon' is not a valid number of seconds"),
        ({"FPGA_CRIHOOK_LOG_LEVEL": "loud"}, "'loud' is not one of"),
    ],
)
def test_bad_settings_are_one_line_and_the_settings_status(env: dict[str, str], words: str) -> None:
    result = run_cli(["prestart"], env, "{}")
    assert result.returncode == ExitStatus.SETTINGS
    assert len(result.stderr.splitlines()) == 1
    assert words in result.stderr
    [variable] = env
    assert f"(env var: '{variable}')" in result.stderr  # what the operator set in hooks.d


def test_runs_without_path_and_as_a_module(shipped_node: SimNode, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle", env=None, devices=None)
    result = subprocess.run(
        [sys.executable, "-m", "fpga_crihook", "prestart"],
        input=state_json(bundle, annotated=False),
        text=True,
        capture_output=True,
        env=shipped_node.env(),
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_help_lists_the_settings() -> None:
    result = run_cli(["--help"], {})
    assert result.returncode == 0
    for option in (
        "--sysfs",
        "--devfs",
        "--bitstreams",
        "--programmer",
        "--lock-dir",
        "--dry-run",
        "--log-file",
    ):
        assert option in result.stdout


@pytest.mark.parametrize("command", ["devices", "gbs-info", "program", "install", "check"])
def test_every_command_help_has_an_example(node: SimNode, command: str) -> None:
    result = run_on(node, command, "--help")

    assert result.returncode == 0
    assert "Example:" in result.stdout
    assert f"fpga-crihook {command}" in result.stdout.split("Example:", 1)[1]


def test_the_hook_imports_no_operator_command(tmp_path: Path) -> None:
    """Each command is imported when it runs: the hook's start pays for its own alone."""
    bundle = write_bundle(tmp_path / "bundle", env=None, devices=None)

    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fpga_crihook", "prestart"],
        input=state_json(bundle, annotated=False),
        text=True,
        capture_output=True,
        env={"FPGA_CRIHOOK_SYSLOG": "off"},
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines()}
    commands = {name for name in imported if name.startswith("fpga_crihook.commands.")}
    assert commands == {"fpga_crihook.commands.prestart"}
