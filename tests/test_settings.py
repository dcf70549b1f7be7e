"""settings: safety checks and the mapping of container device paths onto the roots."""

from pathlib import Path

import pytest

from fpga_crihook.errors import SettingsError
from fpga_crihook.settings import DEFAULT_PATH, ProgrammerKind, Settings, ensure_path_variable


def test_sim_programmer_refuses_the_real_sysfs() -> None:
    with pytest.raises(SettingsError, match="only works on a simulated sysfs tree"):
        Settings(programmer=ProgrammerKind.SIM).check()


def test_sim_programmer_accepts_a_simulated_tree(tmp_path: Path) -> None:
    Settings(sysfs=tmp_path, programmer=ProgrammerKind.SIM).check()


def test_device_paths_map_onto_the_devfs_and_sysfs_roots(tmp_path: Path) -> None:
    settings = Settings(sysfs=tmp_path / "sys", devfs=tmp_path / "dev")
    assert settings.host_path("/dev/dfl-port.0") == tmp_path / "dev" / "dfl-port.0"
    assert settings.host_path("/sys/class/fpga") == tmp_path / "sys" / "class" / "fpga"
    assert settings.host_path("/dev/../etc/x") == Path("/etc/x")
    assert settings.host_path("/devices") == Path("/devices")


def test_missing_path_gets_the_default_and_a_set_one_is_kept() -> None:
    environ: dict[str, str] = {}
    ensure_path_variable(environ)
    assert environ["PATH"] == DEFAULT_PATH
    environ = {"PATH": "/opt/bin"}
    ensure_path_variable(environ)
    assert environ["PATH"] == "/opt/bin"
