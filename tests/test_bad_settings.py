"""Every bad setting is one line naming where it came from: config file, env var or option.

Whatever a TOML file, an environment variable or an option can carry (huge
or non-finite numbers, NUL characters, wrong types, deep nesting, odd
encodings), the hook and the drop-in answer with ``fpga-crihook: <sentence>``
and exit 1, never a traceback.
"""

import os
from pathlib import Path

import pytest
from helpers import AFU_1, DROP_IN, HOOK, REGION_A, Completed, run_cli
from simnode import SimNode, add_card, state_json, write_bundle

from fpga_crihook.errors import ExitStatus

HOOK_PROGRAMS = [
    pytest.param((HOOK, ["prestart"]), id="fpga-crihook"),
    pytest.param((DROP_IN, []), id="intel-fpga-crihook"),
]
DEEP = 20_000
NOBODY = 65534


def _one_line(result: Completed, status: int = ExitStatus.SETTINGS) -> str:
    """The one line of a run refused for a setting: the hook's settings status, or 1 for an
    operator command."""
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("fpga-crihook: ")
    return line


def _run(program: tuple[Path, list[str]], env: dict[str, str], tmp_path: Path) -> Completed:
    path, args = program
    bundle = write_bundle(tmp_path / "bundle", env=None, devices=None)
    return run_cli(args, {"FPGA_CRIHOOK_SYSLOG": "off", **env}, state_json(bundle), program=path)


def _config(node: SimNode, text: bytes) -> Path:
    node.config_file.write_bytes(text)
    node.config_file.chmod(0o644)
    return node.config_file


@pytest.mark.parametrize("program", HOOK_PROGRAMS)
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("deadline", "9" * 400),
        ("lock-timeout", "1" + "0" * 320),
        ("busy-timeout", "nan"),
        ("fpgaconf-timeout", "inf"),
        ("deadline", "1e400"),
        ("lock-timeout", "86401"),
        ("sysfs", '"/sys\\u0000/x"'),
        ("lock-dir", '"/run/x\\u0000"'),
        ("metrics-dir", '"\\u0000"'),
        ("log-file", '"/var/log/x\\u0000"'),
        ("fpgaconf", '"/usr/bin/fpgaconf\\u0000"'),
        ("syslog", '"/dev/log\\u0000"'),
    ],
)
def test_a_config_value_no_setting_can_take_is_one_line_naming_the_file_and_key(
    node: SimNode, tmp_path: Path, program: tuple[Path, list[str]], key: str, value: str
) -> None:
    config = _config(node, f"{key} = {value}\n".encode())

    line = _one_line(_run(program, {"FPGA_CRIHOOK_CONFIG": str(config)}, tmp_path))

    assert line.startswith(f"fpga-crihook: config file {config}: key {key!r}: ")
    assert len(line) < 400


@pytest.mark.parametrize("program", HOOK_PROGRAMS)
@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"a = " + b"[" * DEEP + b"]" * DEEP, "is nested too deeply"),
        (b"a = " + b"{b=" * 3000 + b"}" * 3000, "is nested too deeply"),
        (b"deadline = " + b"9" * 5000, "holds a number of more than 4300 digits"),
    ],
)
def test_a_config_file_no_parser_can_read_is_one_line_naming_the_file(
    node: SimNode, tmp_path: Path, program: tuple[Path, list[str]], text: bytes, words: str
) -> None:
    config = _config(node, text)

    line = _one_line(_run(program, {"FPGA_CRIHOOK_CONFIG": str(config)}, tmp_path))

    assert line.startswith(f"fpga-crihook: config file {config} ")
    assert words in line


@pytest.mark.parametrize("program", HOOK_PROGRAMS)
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FPGA_CRIHOOK_DEADLINE", "nan"),
        ("FPGA_CRIHOOK_DEADLINE", "1e400"),
        ("FPGA_CRIHOOK_DEADLINE", "9" * 400),
        ("FPGA_CRIHOOK_LOCK_TIMEOUT", "nan"),
        ("FPGA_CRIHOOK_BUSY_TIMEOUT", "inf"),
        ("FPGA_CRIHOOK_FPGACONF_TIMEOUT", "-nan"),
    ],
)
def test_a_number_no_wait_can_take_from_the_environment_is_one_line_naming_the_variable(
    tmp_path: Path, program: tuple[Path, list[str]], variable: str, value: str
) -> None:
    line = _one_line(_run(program, {variable: value}, tmp_path))

    assert f"(env var: '{variable}')" in line


@pytest.mark.parametrize(
    ("option", "value"), [("--deadline", "nan"), ("--lock-timeout", "nan"), ("--deadline", "1e999")]
)
def test_a_number_no_wait_can_take_as_an_option_is_one_line_naming_the_option(
    tmp_path: Path, option: str, value: str
) -> None:
    bundle = write_bundle(tmp_path / "bundle", env=None, devices=None)

    line = _one_line(run_cli([option, value, "prestart"], {}, state_json(bundle)))

    assert f"Invalid value for '{option}'" in line


RELATIVE = [
    ("FPGA_CRIHOOK_SYSFS", "sys"),
    ("FPGA_CRIHOOK_DEVFS", "dev"),
    ("FPGA_CRIHOOK_BITSTREAMS", "store"),
    ("FPGA_CRIHOOK_LOCK_DIR", "locks"),
    ("FPGA_CRIHOOK_METRICS_DIR", "metrics"),
    ("FPGA_CRIHOOK_LOG_FILE", "hook.log"),
    ("FPGA_CRIHOOK_SYSLOG", "log.socket"),
    ("FPGA_CRIHOOK_FPGACONF", "rootfs/usr/bin/fpgaconf"),
    ("FPGA_CRIHOOK_CONFIG", "config.toml"),
]


def _hook_world(node: SimNode, tmp_path: Path) -> tuple[Path, str]:
    """A container whose port already holds its AFU, and its state: a hook run that gets
    past its settings succeeds without programming."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_1}"],
        devices=[card.ports[0].device()],
    )
    return bundle, state_json(bundle)


@pytest.mark.parametrize("program", HOOK_PROGRAMS)
@pytest.mark.parametrize(("variable", "value"), RELATIVE)
def test_a_relative_path_is_refused_where_the_runtime_runs_the_hook(
    node: SimNode, tmp_path: Path, program: tuple[Path, list[str]], variable: str, value: str
) -> None:
    bundle, state = _hook_world(node, tmp_path)
    before = sorted(path.name for path in bundle.iterdir())
    path, args = program

    # runc and crun run hooks in the container's bundle directory.
    result = run_cli(args, node.quiet_env(**{variable: value}), state, path, cwd=bundle)

    line = _one_line(result)
    assert line.startswith(f"fpga-crihook: env var {variable}: {value} is a relative path")
    assert "bundle directory" in line
    assert sorted(path.name for path in bundle.iterdir()) == before


def test_relative_paths_from_the_config_file_and_options_are_named_so(
    node: SimNode, tmp_path: Path
) -> None:
    bundle, state = _hook_world(node, tmp_path)
    env = node.quiet_env()
    del env["FPGA_CRIHOOK_LOCK_DIR"]  # it would beat the file's

    from_option = _one_line(run_cli(["--metrics-dir", "m", "prestart"], env, state, cwd=bundle))
    config = _config(node, b'lock-dir = "locks"\n')
    from_file = _one_line(run_cli(["prestart"], env, state, cwd=bundle))

    assert from_file.startswith(
        f"fpga-crihook: config file {config}: key 'lock-dir': locks is a relative path"
    )
    assert from_option.startswith("fpga-crihook: option --metrics-dir: m is a relative path")


def test_operator_commands_resolve_relative_paths_against_the_working_directory(
    node: SimNode, tmp_path: Path
) -> None:
    _, state = _hook_world(node, tmp_path)
    relative = {"FPGA_CRIHOOK_SYSFS": "sys", "FPGA_CRIHOOK_DEVFS": "dev"}
    env = node.quiet_env(**relative)

    listed = run_cli(["devices", "--json"], env, cwd=node.root)
    hooked = run_cli(["prestart"], env, state, cwd=node.root)

    assert listed.returncode == 0, listed.stderr
    assert "dfl-port.0" in listed.stdout
    assert _one_line(hooked).startswith("fpga-crihook: env var FPGA_CRIHOOK_SYSFS: sys is")


@pytest.mark.parametrize("command", [["devices"], ["check"], ["cdi", "generate"], ["prestart"]])
@pytest.mark.parametrize(
    ("variable", "value"),
    [("FPGA_CRIHOOK_SYSFS", "/" + "a" * 300), ("FPGA_CRIHOOK_BITSTREAMS", "/x" * 2100)],
)
def test_a_path_longer_than_the_system_takes_is_one_line_naming_the_variable(
    tmp_path: Path, command: list[str], variable: str, value: str
) -> None:
    bundle = write_bundle(tmp_path / "bundle", env=None, devices=None)
    env = {"FPGA_CRIHOOK_SYSLOG": "off", variable: value}

    status = ExitStatus.SETTINGS if command == ["prestart"] else 1
    line = _one_line(run_cli(command, env, state_json(bundle)), status)

    assert f"(env var: '{variable}')" in line
    assert "longer than a path can be" in line


def _real_user_nobody() -> None:
    # click's readability check is os.access(), which asks as the real user: a user who
    # cannot read root's 0700 lock directory, while the effective user stays root.
    os.setresuid(NOBODY, 0, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing the real user needs root")
def test_a_path_setting_the_user_cannot_read_is_no_bad_setting(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    locks = node.root / "locks"
    locks.mkdir(mode=0o700)  # root's, as the hook leaves /run/fpga-crihook on a node

    result = run_cli(["devices", "--json"], node.quiet_env(), preexec=_real_user_nobody)

    assert result.returncode == 0, result.stderr
    assert "dfl-port.0" in result.stdout
