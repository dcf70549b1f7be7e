"""The console scripts run the CLI with Python's cyclic garbage collector off, and load
no pydantic plugin unless the environment asks for one."""

import gc
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import DROP_IN, HOOK, Completed, run_cli
from simnode import SimNode, state_json, write_bundle

from fpga_crihook import cli, launch


@pytest.mark.parametrize(
    ("entry", "target"), [(launch.main, "main"), (launch.intel_drop_in, "intel_drop_in")]
)
def test_console_scripts_run_the_cli_with_the_collector_off(
    monkeypatch: pytest.MonkeyPatch, entry: Callable[[], None], target: str
) -> None:
    seen: list[bool] = []
    exits: list[int] = []
    monkeypatch.setattr(cli, target, lambda: seen.append(gc.isenabled()))
    monkeypatch.setattr(os, "_exit", exits.append)  # the process ends there, not pytest
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")  # what the entry point would set
    try:
        entry()
    finally:
        gc.enable()

    assert seen == [False]
    assert exits == [0]


def test_importing_the_package_leaves_the_collector_and_the_environment_alone() -> None:
    code = (
        "import gc, os, fpga_crihook.cli, fpga_crihook.launch\n"
        "print(gc.isenabled(), os.environ.get('PYDANTIC_DISABLE_PLUGINS'))"
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYDANTIC")}

    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert result.stdout.split() == ["True", "None"]


def test_the_installed_script_enters_through_the_launcher() -> None:
    assert "from fpga_crihook.launch import main" in HOOK.read_text(encoding="utf-8")


# A distribution on PYTHONPATH that offers a pydantic plugin through the ``pydantic`` entry
# point group, as any installed package may: importing it records the setting it saw.
_SPY_PLUGIN = """
import os, pathlib
pathlib.Path({marker!r}).write_text(os.environ.get("PYDANTIC_DISABLE_PLUGINS", "unset"))

class _Plugin:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None

plugin = _Plugin()
"""


def _run_with_a_pydantic_plugin_installed(
    tmp_path: Path, program: Path, args: list[str], **settings: str
) -> tuple[Completed, Path]:
    """Run *program* for a container without the annotation (its state is still a pydantic
    model) beside a spy plugin; return the run and the file the plugin writes when loaded."""
    site, marker = tmp_path / "site", tmp_path / "plugin-loaded"
    metadata = site / "spy_plugin-1.0.dist-info"
    metadata.mkdir(parents=True)
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: spy-plugin\nVersion: 1.0\n")
    (metadata / "entry_points.txt").write_text("[pydantic]\nspy = spy_plugin:plugin\n")
    (site / "spy_plugin.py").write_text(_SPY_PLUGIN.format(marker=str(marker)))
    bundle = write_bundle(tmp_path / "bundle", env=["A=b"], devices=[])
    node = SimNode(tmp_path / "node")
    env = node.env(PYTHONPATH=str(site), **settings)
    return run_cli(args, env, state_json(bundle, annotated=False), program=program), marker


@pytest.mark.parametrize(("program", "args"), [(HOOK, ["prestart"]), (DROP_IN, [])])
def test_console_scripts_load_no_pydantic_plugin_the_node_never_chose(
    tmp_path: Path, program: Path, args: list[str]
) -> None:
    result, marker = _run_with_a_pydantic_plugin_installed(tmp_path, program, args)

    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def test_console_scripts_keep_pydantic_disable_plugins_when_the_environment_sets_it(
    tmp_path: Path,
) -> None:
    # The environment turns off another plugin by name only: the spy is loaded, and sees
    # the value the environment set.
    result, marker = _run_with_a_pydantic_plugin_installed(
        tmp_path, HOOK, ["prestart"], PYDANTIC_DISABLE_PLUGINS="logfire"
    )

    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "logfire"
