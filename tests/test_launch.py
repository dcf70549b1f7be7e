"""The console scripts run the CLI with Python's cyclic garbage collector off."""

import gc
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from conftest import HOOK

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
    try:
        entry()
    finally:
        gc.enable()

    assert seen == [False]
    assert exits == [0]


def test_importing_the_package_leaves_the_collector_alone() -> None:
    code = "import gc, fpga_crihook.cli, fpga_crihook.launch; print(gc.isenabled())"

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "True"


def test_the_installed_script_enters_through_the_launcher() -> None:
    assert "from fpga_crihook.launch import main" in HOOK.read_text(encoding="utf-8")
