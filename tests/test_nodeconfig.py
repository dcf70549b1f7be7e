"""The node config file: settings for a hook run with no env, trusted only when root's."""

import os
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, REGION_A, Completed, run_cli
from simnode import SimCard, SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook import nodeconfig
from fpga_crihook.errors import ExitStatus, SettingsError

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def _write_config(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _node_settings_toml(node: SimNode) -> str:
    """The simulated node's settings as config file lines (what hooks.d env would say)."""
    return (
        f'sysfs = "{node.sysfs}"\n'
        f'devfs = "{node.devfs}"\n'
        f'bitstreams = "{node.store}"\n'
        f'lock-dir = "{node.root / "locks"}"\n'
        'programmer = "sim"\n'
        'syslog = "off"\n'  # tests never write the machine's journal
    )


def _only_config(path: Path) -> dict[str, str]:
    """An environment that names the config file and no other setting (no PATH)."""
    return {"FPGA_CRIHOOK_CONFIG": str(path), "FPGA_CRIHOOK_SYSLOG": "off"}


def _error_line(result: Completed, status: int = 1) -> str:
    """The one line of a failed run; an operator command fails with 1, the hook with *status*."""
    assert result.returncode == status, result.stdout + result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "Traceback" not in line
    return line


def _container_asking_for_afu_2(node: SimNode, tmp_path: Path) -> tuple[SimCard, Path]:
    """A card whose port holds AFU_1, AFU_2 in the store, and a bundle asking for AFU_2."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )
    return card, bundle


def test_hook_takes_every_setting_from_the_config_file(node: SimNode, tmp_path: Path) -> None:
    card, bundle = _container_asking_for_afu_2(node, tmp_path)
    log_file = tmp_path / "hook.log"
    config = _write_config(
        node.config_file, _node_settings_toml(node) + f'log-file = "{log_file}"\n'
    )

    result = run_cli(["prestart"], _only_config(config), state_json(bundle))

    assert result.returncode == 0, result.stderr
    assert card.ports[0].afu_id() == AFU_2
    assert '"event": "port programmed"' in log_file.read_text()


def test_option_beats_env_beats_file_beats_default(node: SimNode, tmp_path: Path) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    from_env, from_option = tmp_path / "env-sys", tmp_path / "option-sys"
    config = _write_config(node.config_file, f'sysfs = "{node.sysfs}"\n')
    missing = tmp_path / "no-such-config.toml"

    by_file = run_cli(["devices"], _only_config(config))
    by_env = run_cli(["devices"], {**_only_config(config), "FPGA_CRIHOOK_SYSFS": str(from_env)})
    by_option = run_cli(
        ["--sysfs", str(from_option), "devices"],
        {**_only_config(config), "FPGA_CRIHOOK_SYSFS": str(from_env)},
    )
    by_default = run_cli(["devices"], _only_config(missing))

    assert by_file.returncode == 0, by_file.stderr
    assert "dfl-port.0" in by_file.stdout
    assert f"no FPGA cards under {from_env} " in by_env.stdout
    assert f"no FPGA cards under {from_option} " in by_option.stdout
    assert "no FPGA cards under /sys " in by_default.stdout  # no FPGA class on this machine


def test_option_names_another_config_file(node: SimNode, tmp_path: Path) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    config = _write_config(tmp_path / "elsewhere.toml", f'sysfs = "{node.sysfs}"\n')
    broken = _write_config(tmp_path / "broken.toml", "sysfs = \n")

    result = run_cli(["--config-file", str(config), "devices"], _only_config(broken))

    assert result.returncode == 0, result.stderr
    assert "dfl-port.0" in result.stdout


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('sysf = "/x"\n', "unknown key 'sysf' (the keys are the long option names: bitstreams, "),
        ('lock_dir = "/x"\n', "unknown key 'lock_dir'"),
        ('config-file = "/x"\n', "unknown key 'config-file'"),
        ('programmer = "magic"\n', "key 'programmer': 'magic' is not one of 'ioctl', 'fpgaconf'"),
        ('lock-timeout = "3"\n', "key 'lock-timeout': expected a number, not a string '3'"),
        ("lock-timeout = -1\n", "key 'lock-timeout': -1"),
        ('dry-run = "yes"\n', "key 'dry-run': expected true or false, not a string 'yes'"),
        ("sysfs = true\n", "key 'sysfs': expected a string, not a boolean True"),
        ('sysfs = ""\n', "key 'sysfs': must not be empty"),
        ("busy-timeout = true\n", "key 'busy-timeout': expected a number, not a boolean True"),
        ("[sysfs]\nroot = 1\n", "key 'sysfs': expected a string, not a table"),
        ("log-level = 1979-05-27\n", "key 'log-level': expected a string, not a date or time"),
        ("sysfs = /sys\n", "is not valid TOML: "),
        ("sysfs = '/a'\nsysfs = '/b'\n", "is not valid TOML: "),
    ],
)
def test_bad_config_file_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, words: str
) -> None:
    config = _write_config(tmp_path / "config.toml", text)

    line = _error_line(run_cli(["prestart"], _only_config(config), "{}"), ExitStatus.SETTINGS)

    assert line.startswith(f"fpga-crihook: config file {config}")
    assert words in line


def test_config_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b'sysfs = "/caf\xe9"\n')
    config.chmod(0o644)

    line = _error_line(run_cli(["devices"], _only_config(config)))

    assert line.endswith(f"config file {config} is not UTF-8 (byte 13)")


def test_oversized_config_file_is_refused(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "config.toml", "# padding\n" * 7000)

    line = _error_line(run_cli(["devices"], _only_config(config)))

    assert line.endswith(f"config file {config} is larger than 65536 bytes")


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_config_file_writable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    config = _write_config(tmp_path / "config.toml", 'programmer = "ioctl"\n', mode)

    line = _error_line(run_cli(["devices"], _only_config(config)))

    assert f"config file {config} is writable by group or others (mode {mode:04o})" in line
    assert f"chmod go-w {config}" in line


def test_symlinked_config_file_is_refused(tmp_path: Path) -> None:
    target = _write_config(tmp_path / "real.toml", 'programmer = "ioctl"\n')
    link = tmp_path / "config.toml"
    link.symlink_to(target)

    line = _error_line(run_cli(["devices"], _only_config(link)))

    assert f"config file {link} is a symbolic link" in line


def test_config_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo, 0o644)

    line = _error_line(run_cli(["devices"], _only_config(fifo)))  # and it does not hang

    assert line.endswith(f"config file {fifo} is not a regular file")


@ROOT_ONLY
def test_config_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "config.toml", 'fpgaconf = "/tmp/evil"\n')
    os.chown(config, 1000, 1000)

    line = _error_line(run_cli(["devices"], _only_config(config)))

    assert f"config file {config} is owned by uid 1000, not root" in line


def test_missing_config_file_is_fine_and_help_ignores_a_broken_one(tmp_path: Path) -> None:
    broken = _write_config(tmp_path / "broken.toml", "nonsense = 1\n")

    missing = run_cli(["--version"], _only_config(tmp_path / "absent.toml"))
    helped = run_cli(["--help"], _only_config(broken))

    assert missing.returncode == 0, missing.stderr
    assert helped.returncode == 0, helped.stderr
    assert "--config-file" in helped.stdout
    assert "FPGA_CRIHOOK_CONFIG" in helped.stdout


def test_a_setting_of_the_schema_is_a_config_key_without_more_code(tmp_path: Path) -> None:
    """Keys come from the settings' schema: a new setting needs no entry elsewhere."""
    config = _write_config(tmp_path / "config.toml", 'deadline = 12\nsyslog = "off"\n')

    assert nodeconfig.load(config) == {"deadline": 12.0, "syslog": "off"}
    _write_config(config, "deadline = -3\n")
    with pytest.raises(SettingsError, match="key 'deadline': -3"):
        nodeconfig.load(config)


def test_a_log_level_in_the_config_file_reaches_the_journal_not_the_pods_error(
    node: SimNode, tmp_path: Path
) -> None:
    _, bundle = _container_asking_for_afu_2(node, tmp_path)
    log_file = tmp_path / "hook.log"
    config = _write_config(
        node.config_file,
        _node_settings_toml(node) + f'log-file = "{log_file}"\nlog-level = "debug"\n',
    )

    result = run_cli(["prestart"], _only_config(config), state_json(bundle))

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert '"level": "debug"' in log_file.read_text()
