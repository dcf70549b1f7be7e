"""Every bad setting is one line naming where it came from: config file, env var or option.

Whatever a TOML file, an environment variable or an option can carry (huge
or non-finite numbers, NUL characters, wrong types, deep nesting, odd
encodings), the hook and the drop-in answer with ``fpga-crihook: <sentence>``
and exit 1, never a traceback.
"""

from pathlib import Path

import pytest
from conftest import DROP_IN, HOOK, Completed, run_cli
from simnode import SimNode, state_json, write_bundle

HOOK_PROGRAMS = [
    pytest.param((HOOK, ["prestart"]), id="fpga-crihook"),
    pytest.param((DROP_IN, []), id="intel-fpga-crihook"),
]
DEEP = 20_000


def _one_line(result: Completed) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
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
