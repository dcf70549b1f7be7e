"""``prestart --config FILE``: the whole hook run by hand on a sample config.json.

No state comes from stdin: the hook makes one up (container ``manual``, bundle
FILE's directory, the region annotation unless ``--annotation`` says
otherwise). The README's "Try the hook by hand" commands are run as written.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, AFU_3, HOOK, REGION_A, REPO, run_cli
from simnode import SimNode, SimPort, add_card, write_bundle, write_gbs

from fpga_crihook.errors import ExitStatus

README_HOOK = REPO / ".venv" / "bin" / "fpga-crihook"
SHIPPED_PORT_AFU = REPO / "testdata/node/sys/class/fpga_region/region0/dfl-port.0/afu_id"
NLB0 = "d8424dc4a4a3c413f89e433683f9040b"
NLB3 = "f7df405cbd7acf7222f144b0b93acd18"


def _sample(node: SimNode, tmp_path: Path, name: str = "config.json") -> tuple[SimPort, Path]:
    """A card whose one port holds AFU_1, AFU_2 in the store, and a config *name* asking for it."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    sample = tmp_path / "samples"
    write_bundle(
        sample,
        env=["HOME=/root", f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )
    return card.ports[0], (sample / "config.json").rename(sample / name)


def _hook_log(log_file: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log_file.read_text().splitlines()]


@pytest.mark.parametrize("command", ["prestart", "createRuntime"])
def test_config_file_is_programmed_without_reading_stdin(
    node: SimNode, tmp_path: Path, command: str
) -> None:
    port, config = _sample(node, tmp_path)
    log_file = tmp_path / "hook.log"

    # stdin stays open and empty: a hook that read it would wait until the timeout.
    with (
        (tmp_path / "output").open("w+") as output_file,
        subprocess.Popen(
            [str(HOOK), command, "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=output_file,
            stderr=output_file,
            env=node.env(FPGA_CRIHOOK_LOG_FILE=str(log_file)),
        ) as hook,
    ):
        try:
            hook.wait(timeout=30)
        finally:
            hook.kill()
        output_file.seek(0)
        output = output_file.read()

    assert hook.returncode == 0, output
    assert port.afu_id() == AFU_2
    programmed = _hook_log(log_file)[-1]
    assert (programmed["event"], programmed["container_id"]) == ("port programmed", "manual")


def test_config_file_of_any_name_is_read_and_not_the_bundle_config_beside_it(
    node: SimNode, tmp_path: Path
) -> None:
    port, config = _sample(node, tmp_path, name="nlb3-sample.json")
    decoy = {"process": {"env": [f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_3}"]}}
    (config.parent / "config.json").write_text(json.dumps(decoy))

    result = run_cli(["prestart", "--config", str(config)], node.env())

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2


def test_dry_run_on_a_config_file_programs_nothing(node: SimNode, tmp_path: Path) -> None:
    port, config = _sample(node, tmp_path)
    log_file = tmp_path / "hook.log"

    result = run_cli(
        ["--dry-run", "--log-file", str(log_file), "prestart", "--config", str(config)],
        node.env(),
    )

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_1
    assert _hook_log(log_file)[-1]["event"] == "dry run: would program the port"


@pytest.mark.parametrize(
    ("annotations", "afu_after"),
    [
        (["com.intel.fpga.mode=intel.com/fpga-region"], AFU_2),  # the legacy value
        (["io.kubernetes.pod.name=nlb", "com.intel.fpga.mode=fpga.intel.com/region"], AFU_2),
        (["com.intel.fpga.mode=fpga.intel.com/af"], AFU_1),  # not ours: nothing done
        (["io.kubernetes.pod.name=nlb"], AFU_1),  # given annotations replace the default
        ([""], AFU_1),  # none at all
    ],
)
def test_annotations_replace_the_region_annotation(
    node: SimNode, tmp_path: Path, annotations: list[str], afu_after: str
) -> None:
    port, config = _sample(node, tmp_path)
    options = [item for text in annotations for item in ("--annotation", text)]

    result = run_cli(["prestart", "--config", str(config), *options], node.env())

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == afu_after


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--annotation", "com.intel.fpga.mode"], "'com.intel.fpga.mode' is not KEY=VALUE"),
        (["--annotation", "=fpga.intel.com/region"], "is not KEY=VALUE"),
        (["--annotation", "a=1", "--annotation", "a=1"], "'a' is given more than once"),
    ],
)
def test_bad_annotation_is_one_error_line(
    node: SimNode, tmp_path: Path, options: list[str], words: str
) -> None:
    port, config = _sample(node, tmp_path)

    result = run_cli(["prestart", "--config", str(config), *options], node.quiet_env())

    assert result.returncode == ExitStatus.SETTINGS
    [line] = result.stderr.splitlines()
    assert line.startswith("fpga-crihook: ")
    assert "--annotation" in line
    assert words in line
    assert "Traceback" not in result.stderr
    assert port.afu_id() == AFU_1


def test_annotation_without_config_is_refused(node: SimNode) -> None:
    result = run_cli(["prestart", "--annotation", "a=b"], node.quiet_env(), stdin="{}")

    assert result.returncode == ExitStatus.SETTINGS
    assert result.stderr == (
        "fpga-crihook: --annotation only applies to a run by hand with --config FILE\n"
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not exist"),
        (b'{"process": {"env": ["A=b", 7]}}', "field 'process.env.1'"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_bad_config_file_fails_as_the_hook_does(
    node: SimNode, tmp_path: Path, content: bytes | None, words: str
) -> None:
    config = tmp_path / "config.json"
    if content is not None:
        config.write_bytes(content)

    result = run_cli(["prestart", "--config", str(config)], node.quiet_env())

    assert result.returncode == ExitStatus.CONTAINER_INPUT
    [line] = result.stderr.splitlines()
    assert line.startswith("fpga-crihook: ")
    assert words in line
    assert str(config) in line


def test_shipped_sample_is_podmans_config_with_the_shipped_hooks_d_entry() -> None:
    config = json.loads((REPO / "testdata" / "config.json").read_text())
    captured = json.loads((REPO / "testdata" / "oci" / "podman-config.json").read_text())
    hooks_d = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())

    # podman copies a matching hooks.d file's "hook" object into config.json as it is.
    assert config.pop("hooks") == {"prestart": [hooks_d["hook"]]}
    del captured["hooks"]  # the capture's own hook
    assert config == captured


def test_shipped_sample_asks_for_nlb3_on_the_shipped_port() -> None:
    config = json.loads((REPO / "testdata" / "config.json").read_text())
    fpga = [entry for entry in config["process"]["env"] if entry.startswith("FPGA_")]
    [device] = config["linux"]["devices"]
    port_dev = SHIPPED_PORT_AFU.parent / "dev"

    assert fpga == [f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={NLB3}"]
    assert device["path"] == "/dev/dfl-port.0"
    assert f"{device['major']}:{device['minor']}" == port_dev.read_text().strip()
    assert config["annotations"]["com.intel.fpga.mode"] == "fpga.intel.com/region"
    assert (REPO / "testdata/node/store" / REGION_A / f"{NLB3}.gbs").is_file()


def _readme_commands() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Try the hook by hand\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert found, "README.md: no ```sh block under '## Try the hook by hand'"
    return found.group(1)


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    assert README_HOOK.is_file(), f"{README_HOOK} is missing: the README says to run `make demo`"
    commands = _readme_commands()
    before = SHIPPED_PORT_AFU.read_text()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FPGA_CRIHOOK")}
    env["TMPDIR"] = str(tmp_path)  # where the commands' mktemp -d goes
    env["FPGA_CRIHOOK_SYSLOG"] = "off"  # tests never write the machine's journal

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    dry_run_line, afu_after = result.stdout.splitlines()
    dry_run = json.loads(dry_run_line)
    assert (dry_run["event"], dry_run["port"]) == ("dry run: would program the port", "dfl-port.0")
    assert (dry_run["previous_afu_id"], dry_run["afu_id"]) == (NLB0, NLB3)
    assert afu_after == NLB3
    assert SHIPPED_PORT_AFU.read_text() == before == NLB0 + "\n"
    assert not (REPO / "testdata" / "node" / "locks").exists()
