"""settings: the schema each setting is declared in once, safety checks, and the mapping of
container device paths onto the roots."""

from pathlib import Path

import click
import pytest
from helpers import run_cli

from fpga_crihook import nodeconfig
from fpga_crihook.cli import cli
from fpga_crihook.errors import SettingsError
from fpga_crihook.settings import (
    CONFIG_FILE,
    DEFAULT_PATH,
    IN_CONFIG_FILE,
    SCHEMA,
    TABLE_END,
    TABLE_START,
    ProgrammerKind,
    Setting,
    Settings,
    ensure_path_variable,
    markdown_table,
)


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


# --- the schema: each setting declared once ----------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def _group_options() -> dict[str, click.Option]:
    return {option.opts[0]: option for option in cli.params if isinstance(option, click.Option)}


@pytest.mark.parametrize("setting", SCHEMA, ids=lambda setting: setting.key)
def test_every_setting_is_an_option_and_an_env_var_that_agree(setting: Setting) -> None:
    option = _group_options()[setting.option]

    assert option.envvar == setting.env_var
    assert option.default == setting.default
    assert option.help == setting.help
    assert setting.env_var.startswith("FPGA_CRIHOOK_")
    if setting is not CONFIG_FILE:
        assert setting.env_var == "FPGA_CRIHOOK_" + setting.key.upper().replace("-", "_")


def test_the_group_has_no_setting_the_schema_does_not_declare() -> None:
    settings = {name for name in _group_options() if name not in ("--version", "-h")}

    assert settings == {setting.option for setting in SCHEMA}


@pytest.mark.parametrize("setting", IN_CONFIG_FILE, ids=lambda setting: setting.key)
def test_every_setting_is_a_config_key_that_takes_its_default(
    tmp_path: Path, setting: Setting
) -> None:
    value = Path("/var/lib/example") if setting.default is None else setting.default
    config = tmp_path / "config.toml"
    config.write_text(_toml_line(setting.key, value), encoding="utf-8")
    config.chmod(0o644)

    assert nodeconfig.load(config) == {setting.key: value}


def _toml_line(key: str, value: object) -> str:
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}\n"
    if isinstance(value, float):
        return f"{key} = {value}\n"
    return f'{key} = "{value}"\n'


def test_the_config_file_is_no_key_of_itself() -> None:
    assert CONFIG_FILE not in IN_CONFIG_FILE
    assert [setting.key for setting in SCHEMA if setting not in IN_CONFIG_FILE] == ["config-file"]


def test_the_settings_defaults_are_the_schemas() -> None:
    values = {setting.name: setting.default for setting in SCHEMA}
    deadline = Settings().deadline

    assert Settings.from_values(values, deadline) == Settings(deadline=deadline)


def test_the_docs_table_is_the_schemas() -> None:
    text = DOCS.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)

    assert text[start:end] == markdown_table(), (
        f"{DOCS} and the settings' schema disagree: regenerate the table with "
        "`python -m fpga_crihook.settings --markdown` and put it in place of the one "
        "between the markers"
    )


def test_checks_report_lists_every_setting_in_force_in_the_schemas_order(tmp_path: Path) -> None:
    result = run_cli(["check", str(tmp_path / "absent.json")], {"FPGA_CRIHOOK_SYSLOG": "off"})

    reported = [line.split()[2] for line in result.stdout.splitlines() if " setting " in line]
    assert reported == [setting.key for setting in IN_CONFIG_FILE]
