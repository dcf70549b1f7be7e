"""``cdi generate`` and what ``check`` says about CDI specs, hooks.d files and settings."""

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import AFU_1, AFU_2, DROP_IN, HOOK, REGION_A, REGION_B, REPO, Completed, run_cli
from simnode import SimCard, SimNode, add_card, write_gbs

INTEL_KIND = "intel.cdi.k8s.io/fpga"


def _cli(node: SimNode, *args: str, **extra: str) -> Completed:
    return run_cli(list(args), node.env(**extra))


def _generate(node: SimNode, *args: str, **extra: str) -> dict[str, Any]:
    result = _cli(node, "cdi", "generate", *args, **extra)
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


def _lines(result: Completed, level: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(f"{level}: ")]


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
    as_yaml = _cli(node, "cdi", "generate", "--format", "yaml")

    assert as_yaml.returncode == 0, as_yaml.stderr
    assert not as_yaml.stdout.lstrip().startswith("{")
    assert yaml.safe_load(as_yaml.stdout) == as_json


@pytest.mark.parametrize(("name", "fmt"), [("fpga.json", "json"), ("fpga.yaml", "yaml")])
def test_generate_output_is_written_whole_in_the_format_its_name_says(
    node: SimNode, tmp_path: Path, name: str, fmt: str
) -> None:
    _dfl_card(node)
    output = tmp_path / "etc" / "cdi" / name  # the directory is made

    result = _cli(node, "cdi", "generate", "--output", str(output))

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

    message = _error(_cli(node, "cdi", "generate", "--output", str(output), "--format", "yaml"))

    assert message == (
        f"--format yaml does not fit the name {output}: use a yaml file name "
        "(CDI runtimes read *.json and *.yaml)"
    )
    assert not output.exists()


def test_generate_notes_an_output_name_runtimes_ignore(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)
    output = tmp_path / "fpga.yml"

    result = _cli(node, "cdi", "generate", "--output", str(output))

    assert result.returncode == 0, result.stderr
    assert "note: CDI runtimes read only *.json and *.yaml files: fpga.yml is not one of them" in (
        result.stderr
    )


def test_generate_on_a_node_without_ports_is_an_error(node: SimNode) -> None:
    message = _error(_cli(node, "cdi", "generate"))

    assert message == f"no FPGA ports under {node.sysfs}: a CDI spec needs at least one device"


def test_generate_leaves_out_a_port_whose_numbers_cannot_be_read(node: SimNode) -> None:
    card = _dfl_card(node)
    (card.ports[1].sysfs_dir / "dev").unlink()

    result = _cli(node, "cdi", "generate")

    assert result.returncode == 0, result.stderr
    assert [device["name"] for device in json.loads(result.stdout)["devices"]] == [
        "dfl-port.0",
        "all",
    ]
    assert "note: dfl-port.1 left out: " in result.stderr


def test_generate_refuses_a_hook_path_that_is_not_a_program(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)

    message = _error(_cli(node, "cdi", "generate", "--hook-path", str(tmp_path / "nothing")))

    assert message == f"--hook-path {tmp_path / 'nothing'} is not an executable file"


# --- check: CDI specs ------------------------------------------------------------------------


def _write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec) if path.suffix == ".yaml" else json.dumps(spec))
    return path


def _intel_spec(hook_path: Path | str = DROP_IN, **hook: Any) -> dict[str, Any]:
    """A spec as Intel's FPGA device plugin writes it: one FME device, a bare hook."""
    return {
        "cdiVersion": "0.5.0",
        "kind": INTEL_KIND,
        "devices": [
            {
                "name": "dfl-fme.0",
                "containerEdits": {
                    "hooks": [{"hookName": "createRuntime", "path": str(hook_path), **hook}]
                },
            }
        ],
    }


def _hooks_d_file(directory: Path) -> Path:
    document = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
    document["hook"]["path"] = str(HOOK)
    return _write_spec(directory / "intel-fpga-crihook.json", document)


def test_check_passes_a_generated_spec(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)
    spec = _write_spec(tmp_path / "cdi" / "fpga.json", _generate(node))

    result = _cli(node, "check", str(spec))

    assert result.returncode == 0, result.stdout
    assert _lines(result, "warning") == []
    assert (
        f"ok: {spec}: CDI spec (cdiVersion 0.5.0, kind intel.com/fpga) runs fpga-crihook "
        "at createRuntime" in result.stdout.splitlines()
    )


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_check_passes_intels_spec_with_the_drop_in(
    node: SimNode, tmp_path: Path, suffix: str
) -> None:
    _dfl_card(node)
    spec = _write_spec(tmp_path / f"intel{suffix}", _intel_spec())

    result = _cli(node, "check", str(spec))

    assert result.returncode == 0, result.stdout
    assert f"ok: {spec}: CDI spec (cdiVersion 0.5.0, kind {INTEL_KIND}) runs fpga-crihook" in (
        result.stdout
    )


def test_check_says_how_to_install_a_missing_drop_in(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)
    missing = tmp_path / "opt" / "intel" / "fpga-sw" / "intel-fpga-crihook"
    spec = _write_spec(tmp_path / "intel.json", _intel_spec(missing))

    result = _cli(node, "check", str(spec))

    assert result.returncode == 1
    assert _lines(result, "error") == [
        f"error: {spec}: device 'dfl-fme.0': hook {missing} does not exist (the "
        "intel-fpga-crihook image puts the drop-in there as the init container of Intel's FPGA "
        "plugin DaemonSet)"
    ]


def test_check_reports_a_hook_that_runs_too_late_or_cannot_run(
    node: SimNode, tmp_path: Path
) -> None:
    _dfl_card(node)
    script = tmp_path / "fpga-crihook"
    script.write_text("#!/bin/sh\n")
    spec = _generate(node)
    spec["containerEdits"]["hooks"][0].update(hookName="poststart", path=str(script))
    path = _write_spec(tmp_path / "fpga.json", spec)

    result = _cli(node, "check", str(path))

    assert result.returncode == 1
    where = f"error: {path}: containerEdits: hook {script}"
    assert _lines(result, "error") == [
        f"{where} runs at poststart, neither prestart nor createRuntime: the accelerator "
        "would not be in place when the container starts",
        f"{where} is not executable",
    ]


def test_check_warns_about_our_spec_without_the_cdi_argument(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)
    spec = _generate(node)
    spec["containerEdits"]["hooks"][0]["args"] = ["fpga-crihook", "createRuntime"]
    path = _write_spec(tmp_path / "fpga.json", spec)

    result = _cli(node, "check", str(path))

    assert result.returncode == 0, result.stdout
    assert _lines(result, "warning") == [
        f"warning: {path}: containerEdits: hook {HOOK}: args ['fpga-crihook', 'createRuntime'] "
        "lack --cdi: a container given a device of kind intel.com/fpga without the FPGA region "
        "annotation starts without its accelerator programmed"
    ]


def test_check_warns_about_a_cdi_hook_env_that_puts_events_on_stderr(
    node: SimNode, tmp_path: Path
) -> None:
    _dfl_card(node)
    spec = _generate(node)
    spec["containerEdits"]["hooks"][0]["env"].append("FPGA_CRIHOOK_LOG_LEVEL=debug")
    path = _write_spec(tmp_path / "fpga.json", spec)

    result = _cli(node, "check", str(path))

    assert result.returncode == 0, result.stdout
    assert _lines(result, "warning") == [
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
    _dfl_card(node)
    spec = _intel_spec(timeout=timeout, env=env)
    path = _write_spec(tmp_path / "cdi" / "intel.json", spec)
    roomy = _write_spec(tmp_path / "cdi" / "roomy.json", _intel_spec(timeout=101, env=env))

    result = _cli(node, "check", str(path))
    passed = _cli(node, "check", str(roomy))

    assert _lines(result, "warning") == [
        f"warning: {path}: device 'dfl-fme.0': hook {DROP_IN}: timeout {timeout} s is not "
        f"above the hook's deadline of {deadline}: the runtime may kill the hook in the "
        "middle of programming; set the timeout above the deadline"
    ]
    assert _lines(passed, "warning") == []


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
    _dfl_card(node)
    spec = _generate(node)
    change(spec)
    path = _write_spec(tmp_path / "fpga.json", spec)

    result = _cli(node, "check", str(path))

    assert result.returncode == 1
    errors = _lines(result, "error")
    assert any(words in line for line in errors), errors
    assert all(
        line.startswith(f"error: {path}: breaks the CDI 0.5.0 format at ")
        and line.endswith("(the runtime would ignore the whole file)")
        for line in errors
    ), errors


def test_check_reads_hooks_of_other_cdi_versions(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)
    spec = _intel_spec(tmp_path / "gone" / "intel-fpga-crihook")
    spec.update(cdiVersion="0.6.0", annotations={"made-by": "someone"})
    path = _write_spec(tmp_path / "intel.json", spec)

    result = _cli(node, "check", str(path))

    assert result.returncode == 1
    assert _lines(result, "warning") == [
        f"warning: {path}: cdiVersion '0.6.0': fpga-crihook knows the CDI 0.5.0 format only, "
        "so only the hooks were checked"
    ]
    assert f"hook {tmp_path / 'gone' / 'intel-fpga-crihook'} does not exist" in result.stdout


def test_check_warns_about_device_nodes_the_node_lacks(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)
    spec = _generate(node)
    path = _write_spec(tmp_path / "fpga.json", spec)
    (node.devfs / "dfl-port.1").unlink()

    result = _cli(node, "check", str(path))

    assert _lines(result, "warning") == [
        f"warning: {path}: {node.devfs / 'dfl-port.1'} (device dfl-port.1, all) does not "
        "exist on this node: regenerate the spec (fpga-crihook cdi generate)"
    ]


# --- check: hooks.d and CDI at once ------------------------------------------------------------


def _search(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    hooks_dir, cdi_dir = tmp_path / "hooks.d", tmp_path / "cdi"
    hooks_dir.mkdir()
    cdi_dir.mkdir()
    return (
        hooks_dir,
        cdi_dir,
        ["check", "--hooks-dir", str(hooks_dir), "--cdi-spec-dir", str(cdi_dir)],
    )


def test_check_finds_hooks_d_and_intels_spec_running_the_hook_twice(
    node: SimNode, tmp_path: Path
) -> None:
    _dfl_card(node)
    hooks_dir, cdi_dir, check = _search(tmp_path)
    hooks_file = _hooks_d_file(hooks_dir)
    spec = _write_spec(cdi_dir / "intel.cdi.k8s.io-fpga.json", _intel_spec())
    _write_spec(cdi_dir / "other-vendor.json", {**_intel_spec("/bin/true"), "kind": "x.com/gpu"})

    result = _cli(node, *check)

    assert result.returncode == 1
    shipped = REPO / "fpga_crihook" / "data" / "intel-fpga-crihook.json"  # checked too
    assert _lines(result, "error") == [
        f"error: {shipped}: hook.path /opt/intel/fpga-crihook/bin/fpga-crihook does not exist",
        f"error: {hooks_file} and {spec} both run fpga-crihook for an FPGA region container "
        f"given a device of kind {INTEL_KIND}, whose ports would be programmed twice: "
        f"remove {hooks_file}: Intel's device plugin runs the hook through {spec}",
    ]
    assert "other-vendor" not in result.stdout  # only specs that run fpga-crihook are read


def test_check_finds_hooks_d_and_a_generated_spec_running_the_hook_twice(
    node: SimNode, tmp_path: Path
) -> None:
    _dfl_card(node)
    hooks_file = _hooks_d_file(tmp_path / "hooks.d")
    spec = _write_spec(tmp_path / "cdi" / "fpga.yaml", _generate(node))

    result = _cli(node, "check", str(hooks_file), str(spec))

    assert result.returncode == 1
    assert _lines(result, "error") == [
        f"error: {hooks_file} and {spec} both run fpga-crihook for an FPGA region container "
        "given a device of kind intel.com/fpga, whose ports would be programmed twice: "
        f"keep one: remove {spec}, or {hooks_file} (containerd never reads it)"
    ]


def test_check_without_files_warns_when_nothing_runs_the_hook(
    node: SimNode, tmp_path: Path
) -> None:
    _dfl_card(node)
    hooks_dir, cdi_dir, check = _search(tmp_path)

    result = _cli(node, *check)

    assert (
        f"warning: no hooks.d file or CDI spec in {hooks_dir}, {cdi_dir} runs fpga-crihook: "
        "install the hooks.d file (CRI-O, podman) or a CDI spec (fpga-crihook cdi generate; "
        "or Intel's device plugin with the intel-fpga-crihook drop-in)"
    ) in _lines(result, "warning")


def test_check_without_files_checks_the_installed_spec(node: SimNode, tmp_path: Path) -> None:
    _dfl_card(node)
    _hooks_dir, cdi_dir, check = _search(tmp_path)
    spec = _write_spec(cdi_dir / "fpga.json", _generate(node))

    result = _cli(node, *check)

    assert f"ok: {spec}: CDI spec (cdiVersion 0.5.0, kind intel.com/fpga)" in result.stdout
    assert _lines(result, "warning") == []


# --- check: the config file and the settings in force ------------------------------------------


def test_check_reports_the_config_file_and_where_each_setting_came_from(
    node: SimNode, tmp_path: Path
) -> None:
    _dfl_card(node)
    node.config_file.write_text('lock-timeout = 5\nlog-level = "debug"\n')
    node.config_file.chmod(0o600)
    spec = _write_spec(tmp_path / "fpga.json", _generate(node))

    result = _cli(node, "--log-level", "warning", "check", str(spec))

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"ok: config file {node.config_file} (named on the environment): "
        "1 setting(s) in force from it",
        f"ok: setting sysfs = {node.sysfs} (environment FPGA_CRIHOOK_SYSFS)",
    ]
    assert "ok: setting lock-timeout = 5.0 (config file)" in lines
    assert "ok: setting log-level = warning (command line)" in lines  # it beat the file
    assert "ok: setting busy-timeout = 3.0 (default)" in lines
    assert "ok: setting log-file = none (default)" in lines


def test_check_says_when_there_is_no_config_file(tmp_path: Path) -> None:
    result = run_cli(["check", str(tmp_path / "x.json")], {})

    assert result.stdout.splitlines()[0] == (
        "ok: no config file at /etc/fpga-crihook/config.toml: nothing read from one"
    )
