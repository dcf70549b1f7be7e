"""``cdi generate``: the spec it writes for the node's ports, and where."""

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import AFU_1, AFU_2, HOOK, REGION_A, REGION_B, Completed, run_cli, run_on
from simnode import SimCard, SimNode, add_card, write_gbs


def _generate(node: SimNode, *args: str, **extra: str) -> dict[str, Any]:
    result = run_on(node, "cdi", "generate", *args, **extra)
    assert result.returncode == 0, result.stderr
    spec: dict[str, Any] = json.loads(result.stdout)
    return spec


def _error(result: Completed) -> str:
    """The error sentence, whether the last stderr line is a JSON event or plain text."""
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.splitlines()[-1]
    try:
        return str(json.loads(last)["error"])
    except ValueError:
        return last


def _dfl_card(node: SimNode, ports: int = 2) -> SimCard:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1] * ports)
    write_gbs(node, REGION_A, AFU_2)
    return card


# --- cdi generate ------------------------------------------------------------------------------


def test_generate_names_a_device_per_port_and_all_with_the_hook_once(node: SimNode) -> None:
    _dfl_card(node)

    spec = _generate(node)

    assert (spec["cdiVersion"], spec["kind"]) == ("0.5.0", "intel.com/fpga")
    nodes = [
        {
            "path": f"/dev/dfl-port.{number}",
            "hostPath": str(node.devfs / f"dfl-port.{number}"),
            "type": "c",
            "major": 511,
            "minor": number,
            "permissions": "rw",
        }
        for number in (0, 1)
    ]
    assert spec["devices"] == [
        {"name": "dfl-port.0", "containerEdits": {"deviceNodes": [nodes[0]]}},
        {"name": "dfl-port.1", "containerEdits": {"deviceNodes": [nodes[1]]}},
        {"name": "all", "containerEdits": {"deviceNodes": nodes}},
    ]
    [hook] = spec["containerEdits"]["hooks"]  # spec-wide: once per container, however many
    assert hook["hookName"] == "createRuntime"
    assert hook["path"] == str(HOOK)
    assert hook["args"] == ["fpga-crihook", "createRuntime", "--cdi"]
    assert hook["timeout"] == 90
    # Every setting the command was given but the log format, which the tests ask for
    # to read events on stderr: in a hook it would put them into a failed pod's error.
    given = {**node.env()}
    assert given.pop("FPGA_CRIHOOK_LOG_FORMAT") == "json"
    assert sorted(hook["env"]) == sorted(f"{name}={value}" for name, value in given.items())


@pytest.mark.parametrize(
    ("where", "deadline", "timeout"),
    [("option", "120", 130), ("env", "200.5", 211), ("config file", "150", 160)],
)
def test_generate_sets_the_hook_timeout_above_the_deadline_in_force(
    node: SimNode, where: str, deadline: str, timeout: int
) -> None:
    _dfl_card(node)
    args, env = ["cdi", "generate"], node.env()
    if where == "option":
        args = ["--deadline", deadline, *args]
    elif where == "env":
        env["FPGA_CRIHOOK_DEADLINE"] = deadline
    else:
        node.config_file.write_text(f"deadline = {deadline}\n")
        node.config_file.chmod(0o644)

    result = run_cli(args, env)

    assert result.returncode == 0, result.stderr
    [hook] = json.loads(result.stdout)["containerEdits"]["hooks"]
    assert hook["timeout"] == timeout


def test_generate_names_opae_ports_with_their_numbers(node: SimNode) -> None:
    add_card(node, "opae", index=0, interface_id=REGION_B, afu_ids=[AFU_1], first_port=3)

    spec = _generate(node)

    assert [device["name"] for device in spec["devices"]] == ["intel-fpga-port.3", "all"]
    [entry] = spec["devices"][0]["containerEdits"]["deviceNodes"]
    assert (entry["path"], entry["major"], entry["minor"]) == ("/dev/intel-fpga-port.3", 509, 3)


def test_generate_env_holds_only_settings_given_that_differ_from_the_defaults(
    node: SimNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dfl_card(node)
    node.config_file.write_text(f'bitstreams = "{node.store}"\nlock-timeout = 5\n')
    node.config_file.chmod(0o644)
    env = {"FPGA_CRIHOOK_CONFIG": str(node.config_file), "FPGA_CRIHOOK_DEVFS": "/dev"}
    monkeypatch.chdir(tmp_path)  # relative options become absolute paths in the spec

    sysfs = os.path.relpath(node.sysfs, tmp_path)
    result = run_cli(["--sysfs", sysfs, "--lock-timeout", "30.0", "cdi", "generate"], env)

    assert result.returncode == 0, result.stderr
    [hook] = json.loads(result.stdout)["containerEdits"]["hooks"]
    # The config file is named, not copied: the hook reads it at each start.
    assert hook["env"] == [
        f"FPGA_CRIHOOK_CONFIG={node.config_file}",
        f"FPGA_CRIHOOK_SYSFS={node.sysfs}",
    ]
    device = json.loads(result.stdout)["devices"][0]
    assert "hostPath" not in device["containerEdits"]["deviceNodes"][0]  # /dev is the host's


def test_generate_leaves_out_a_config_file_at_the_default_path(node: SimNode) -> None:
    _dfl_card(node, ports=1)
    args = ["--sysfs", str(node.sysfs), "--devfs", "/dev", "cdi", "generate"]

    result = run_cli(args, {"FPGA_CRIHOOK_CONFIG": "/etc/fpga-crihook/config.toml"})

    assert result.returncode == 0, result.stderr
    [hook] = json.loads(result.stdout)["containerEdits"]["hooks"]
    assert hook["env"] == [f"FPGA_CRIHOOK_SYSFS={node.sysfs}"]


def test_generate_yaml_is_the_same_spec(node: SimNode) -> None:
    _dfl_card(node)

    as_json = _generate(node)
    as_yaml = run_on(node, "cdi", "generate", "--format", "yaml")

    assert as_yaml.returncode == 0, as_yaml.stderr
    assert not as_yaml.stdout.lstrip().startswith("{")
    assert yaml.safe_load(as_yaml.stdout) == as_json


@pytest.mark.parametrize(("name", "fmt"), [("fpga.json", "json"), ("fpga.yaml", "yaml")])
def test_generate_output_is_written_whole_in_the_format_its_name_says(
    node: SimNode, tmp_path: Path, name: str, fmt: str
) -> None:
    _dfl_card(node)
    output = tmp_path / "etc" / "cdi" / name  # the directory is made

    result = run_on(node, "cdi", "generate", "--output", str(output))

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == f"wrote {output}: kind intel.com/fpga, devices dfl-port.0, dfl-port.1, all\n"
    )
    loaded = json.loads(output.read_text()) if fmt == "json" else yaml.safe_load(output.read_text())
    assert loaded == _generate(node)
    assert stat.S_IMODE(output.stat().st_mode) == 0o644
    assert [path.name for path in output.parent.iterdir()] == [name]  # no temporary file left


def test_generate_refuses_a_format_its_output_name_contradicts(
    node: SimNode, tmp_path: Path
) -> None:
    _dfl_card(node)
    output = tmp_path / "fpga.json"

    message = _error(run_on(node, "cdi", "generate", "--output", str(output), "--format", "yaml"))

    assert message == (
        f"--format yaml does not fit the name {output}: use a yaml file name "
        "(CDI runtimes read *.json and *.yaml)"
    )
    assert not output.exists()


def test_generate_notes_an_output_name_runtimes_ignore(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)
    output = tmp_path / "fpga.yml"

    result = run_on(node, "cdi", "generate", "--output", str(output))

    assert result.returncode == 0, result.stderr
    assert "note: CDI runtimes read only *.json and *.yaml files: fpga.yml is not one of them" in (
        result.stderr
    )


def test_generate_on_a_node_without_ports_is_an_error(node: SimNode) -> None:
    message = _error(run_on(node, "cdi", "generate"))

    assert message == f"no FPGA ports under {node.sysfs}: a CDI spec needs at least one device"


def test_generate_leaves_out_a_port_whose_numbers_cannot_be_read(node: SimNode) -> None:
    card = _dfl_card(node)
    (card.ports[1].sysfs_dir / "dev").unlink()

    result = run_on(node, "cdi", "generate")

    assert result.returncode == 0, result.stderr
    assert [device["name"] for device in json.loads(result.stdout)["devices"]] == [
        "dfl-port.0",
        "all",
    ]
    assert "note: dfl-port.1 left out: " in result.stderr


def test_generate_refuses_a_hook_path_that_is_not_a_program(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)

    message = _error(run_on(node, "cdi", "generate", "--hook-path", str(tmp_path / "nothing")))

    assert message == f"--hook-path {tmp_path / 'nothing'} is not an executable file"
