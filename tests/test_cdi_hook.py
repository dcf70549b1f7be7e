"""The hook as CDI runs it: Intel's drop-in (no arguments) and ``createRuntime --cdi``.

Intel's device plugin writes the spec that runs the drop-in only in region mode,
and containerd passes no annotation on to the hook: the drop-in runs as for an
annotated container whatever the state's annotations say.
"""

import json
from pathlib import Path

from helpers import AFU_1, AFU_2, DROP_IN, REGION_A, Completed, run_cli
from simnode import (
    SimNode,
    SimPort,
    add_card,
    containerd_annotations,
    state_json,
    write_bundle,
    write_gbs,
)

from fpga_crihook.errors import ExitStatus

UNKNOWN_AFU = "0123456789abcdef0123456789abcdef"


def _port_and_bundle(
    node: SimNode, tmp_path: Path, env: list[str] | None = None
) -> tuple[SimPort, Path]:
    """One port holding AFU_1, AFU_2 in the store, and a container asking for *env*."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    if env is None:
        env = [f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"]
    bundle = write_bundle(
        tmp_path / "bundle", env=["PATH=/bin", *env], devices=[card.ports[0].device()]
    )
    return card.ports[0], bundle


def _request_without_a_port(node: SimNode, tmp_path: Path) -> Path:
    """A node with a port, and a container asking for AFU_2 but given only /dev/null."""
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    return write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}],
    )


def _config_only(node: SimNode, log_file: Path) -> dict[str, str]:
    """No setting in the environment: all of them in the node's config file."""
    node.config_file.write_text(
        "".join(
            f'{key} = "{value}"\n'
            for key, value in (
                ("sysfs", node.sysfs),
                ("devfs", node.devfs),
                ("bitstreams", node.store),
                ("lock-dir", node.root / "locks"),
                ("programmer", "sim"),
                ("log-file", log_file),
                ("syslog", "off"),  # tests never write the machine's journal
            )
        )
    )
    node.config_file.chmod(0o644)
    return {"FPGA_CRIHOOK_CONFIG": str(node.config_file)}


def _records(log_file: Path) -> list[dict[str, object]]:
    if not log_file.exists():
        return []
    return [json.loads(line) for line in log_file.read_text().splitlines()]


def _events(log_file: Path) -> list[object]:
    return [record["event"] for record in _records(log_file)]


def _containerd_state(bundle: Path) -> str:
    """The state containerd 1.7 gives the hook: its own pod keys, no region annotation."""
    return state_json(
        bundle, annotated=False, annotations=containerd_annotations("bars", "probe", "c1")
    )


def _drop_in(env: dict[str, str], state: str) -> Completed:
    return run_cli([], env, state, program=DROP_IN)


def test_drop_in_with_no_arguments_programs_an_annotated_container(
    node: SimNode, tmp_path: Path
) -> None:
    port, bundle = _port_and_bundle(node, tmp_path)
    log_file = tmp_path / "hook.log"

    result = _drop_in(_config_only(node, log_file), state_json(bundle))

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    assert _events(log_file)[-1] == "port programmed"


def test_drop_in_programs_a_container_in_containerds_state_without_the_annotation(
    node: SimNode, tmp_path: Path
) -> None:
    port, bundle = _port_and_bundle(node, tmp_path)
    log_file = tmp_path / "hook.log"

    result = _drop_in(_config_only(node, log_file), _containerd_state(bundle))

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert port.afu_id() == AFU_2
    programmed = _records(log_file)[-1]
    assert programmed["event"] == "port programmed"
    assert (programmed["pod_namespace"], programmed["pod_name"]) == ("bars", "probe")
    assert programmed["container_name"] == "c1"


def test_drop_in_leaves_a_container_with_no_port_and_no_request_alone(
    node: SimNode, tmp_path: Path
) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(tmp_path / "bundle", env=["PATH=/bin"], devices=None)
    log_file = tmp_path / "hook.log"

    result = _drop_in(_config_only(node, log_file), _containerd_state(bundle))

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    [event] = _records(log_file)
    assert event["level"] == "info"
    assert event["event"] == (
        "no FPGA port and no FPGA_REGION_N / FPGA_AFU_N variables: nothing to do "
        "(another container of an FPGA pod)"
    )


def test_drop_in_refuses_a_port_without_a_request(node: SimNode, tmp_path: Path) -> None:
    port, bundle = _port_and_bundle(node, tmp_path, env=["HOME=/root"])

    result = _drop_in(_config_only(node, tmp_path / "hook.log"), _containerd_state(bundle))

    assert result.returncode == ExitStatus.CONTAINER_INPUT
    assert result.stderr == (
        "fpga-crihook: the container was given an FPGA region by Intel's device plugin "
        "(its CDI spec runs intel-fpga-crihook) but no FPGA_REGION_N / FPGA_AFU_N variables\n"
    )
    assert port.afu_id() == AFU_1


def test_drop_in_refuses_a_request_without_a_port(node: SimNode, tmp_path: Path) -> None:
    bundle = _request_without_a_port(node, tmp_path)

    result = _drop_in(_config_only(node, tmp_path / "hook.log"), _containerd_state(bundle))

    assert result.returncode == ExitStatus.CONTAINER_INPUT
    assert "but none of its linux.devices is an FPGA port" in result.stderr


def test_drop_in_fails_like_create_runtime(node: SimNode, tmp_path: Path) -> None:
    env = [f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={UNKNOWN_AFU}"]
    port, bundle = _port_and_bundle(node, tmp_path, env)
    settings = _config_only(node, tmp_path / "hook.log")

    dropped_in = _drop_in(settings, state_json(bundle))
    create_runtime = run_cli(["createRuntime"], settings, state_json(bundle))

    assert dropped_in.returncode == create_runtime.returncode == ExitStatus.NO_BITSTREAM
    assert dropped_in.stderr == create_runtime.stderr  # one line, what runc hands on
    [line] = dropped_in.stderr.splitlines()
    assert line.startswith(f"fpga-crihook: no bitstream for region {REGION_A}, AFU {UNKNOWN_AFU}")
    assert port.afu_id() == AFU_1


def test_drop_in_help_is_the_create_runtime_help() -> None:
    result = run_cli(["--help"], {}, program=DROP_IN)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: intel-fpga-crihook createRuntime [OPTIONS]")


def test_cdi_argument_programs_without_the_annotation(node: SimNode, tmp_path: Path) -> None:
    port, bundle = _port_and_bundle(node, tmp_path)

    result = run_cli(["createRuntime", "--cdi"], node.env(), state_json(bundle, annotated=False))

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2


def test_cdi_container_that_names_no_accelerator_gets_its_port_as_it_is(
    node: SimNode, tmp_path: Path
) -> None:
    port, bundle = _port_and_bundle(node, tmp_path, env=["HOME=/root"])

    result = run_cli(["createRuntime", "--cdi"], node.env(), state_json(bundle, annotated=False))

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_1
    [event] = [json.loads(line) for line in result.stderr.splitlines()]
    assert event["event"] == "no FPGA_REGION_N / FPGA_AFU_N variables: nothing to program"


def test_cdi_container_with_a_broken_request_still_fails(node: SimNode, tmp_path: Path) -> None:
    port, bundle = _port_and_bundle(node, tmp_path, env=[f"FPGA_REGION_1={REGION_A}"])

    result = run_cli(["createRuntime", "--cdi"], node.env(), state_json(bundle, annotated=False))

    assert result.returncode == ExitStatus.CONTAINER_INPUT
    assert "FPGA_REGION_1 is set but FPGA_AFU_1 is not" in result.stderr
    assert port.afu_id() == AFU_1


def test_cdi_container_without_an_fpga_port_is_told_so(node: SimNode, tmp_path: Path) -> None:
    bundle = _request_without_a_port(node, tmp_path)

    result = run_cli(["createRuntime", "--cdi"], node.env(), state_json(bundle, annotated=False))

    assert result.returncode == ExitStatus.CONTAINER_INPUT
    assert (
        "the container was given an FPGA device through CDI but none of its linux.devices "
        "is an FPGA port" in result.stderr
    )
