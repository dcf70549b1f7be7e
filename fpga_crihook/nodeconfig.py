"""The node config file: settings for a hook that the runtime runs without any env.

Intel's device plugin attaches the hook through a CDI spec that passes no
``env``, so a node that needs another store, programmer or log file says so
in ``/etc/fpga-crihook/config.toml`` (``FPGA_CRIHOOK_CONFIG`` names another
file). Its keys are the long names of the command group's options
(``sysfs``, ``lock-dir``, ``dry-run``, ...), taken from the group itself, so
every setting the group has is a key. The file fills click's ``default_map``,
which gives the precedence DESIGN.md section 6 promises: option > env var >
config file > default.

The hook runs as root and the file can name an executable (``fpgaconf``), so
it is trusted as sudo and sshd trust theirs: a regular file (not a symlink)
owned by root, or by the user running the command (who could run anything
anyway), and not writable by group or others. Those checks are made on the
descriptor that is then read, so the file cannot be swapped in between.
"""

import enum
import errno
import os
import reprlib
import stat
import sys
from pathlib import Path
from typing import Any, NamedTuple

import click
from click.core import ParameterSource

from fpga_crihook import files, trust
from fpga_crihook.errors import SettingsError

DEFAULT_PATH = Path("/etc/fpga-crihook/config.toml")
ENV_VAR = "FPGA_CRIHOOK_CONFIG"
MAX_BYTES = 64 << 10
_META_KEY = "fpga_crihook.config_file"


class Origin(enum.StrEnum):
    """Where a setting in force came from, in order of precedence."""

    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"
    CONFIG_FILE = "config file"
    DEFAULT = "default"


class ConfigFile(NamedTuple):
    """The config file a run looked at, and whether it was there."""

    path: Path
    found: bool
    named_by: Origin  # DEFAULT, or how another path was given


class Setting(NamedTuple):
    """One setting in force: its config key, value, built-in default, origin and env var."""

    key: str
    value: Any
    default: Any
    origin: Origin
    envvar: str | None

    @property
    def is_default(self) -> bool:
        """True when the value is the built-in default (``/sys`` and ``Path("/sys")`` alike)."""
        if self.value is None or self.default is None:
            return self.value is self.default
        return env_text(self.value) == env_text(self.default)

    def as_env(self) -> str | None:
        """``VAR=value`` that gives the hook this setting, or ``None`` if it has no variable."""
        if self.envvar is None or self.value is None:
            return None
        return f"{self.envvar}={env_text(self.value)}"


def env_text(value: Any) -> str:
    """A setting's value as its environment variable spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_defaults(context: click.Context, path: Path, named_by: Origin) -> None:
    """Read the config file at *path* into *context*'s ``default_map``; missing is fine.

    Raises :class:`SettingsError` naming the file (and the key) when the file
    is not trusted, not TOML, or holds an unknown key or a bad value.
    """
    document = read(path)
    context.meta[_META_KEY] = ConfigFile(path, document is not None, named_by)
    if document:
        context.default_map = defaults_for(document, context, path)


def read(path: Path) -> dict[str, Any] | None:
    """The TOML document in *path*, or ``None`` when there is no such file."""
    try:
        fd = files.open_regular(path)  # a symlink is refused; a FIFO cannot hang the hook
    except FileNotFoundError:
        return None
    except files.NotRegularFile:
        raise SettingsError(f"config file {path} is not a regular file") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SettingsError(
                f"config file {path} is a symbolic link: name the file itself "
                f"({ENV_VAR}) or replace the link with a copy"
            ) from None
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as stream:
        _require_trusted(path, os.fstat(stream.fileno()))
        try:
            raw = stream.read(MAX_BYTES + 1)
        except OSError as error:
            raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise SettingsError(f"config file {path} is larger than {MAX_BYTES} bytes")
    return _parse(path, raw)


def defaults_for(document: dict[str, Any], context: click.Context, path: Path) -> dict[str, Any]:
    """The ``default_map`` for *document*: every key a setting of the command, every value valid."""
    options = settings_options(context.command)
    defaults = {}
    for key, value in document.items():
        option = options.get(key)
        if option is None:
            raise SettingsError(
                f"config file {path}: unknown key {key!r} (the keys are the long option "
                f"names: {', '.join(sorted(options))})"
            )
        assert option.name is not None  # an option with a long name has a name
        defaults[option.name] = _converted(
            option, value, context, f"config file {path}: key {key!r}"
        )
    return defaults


def settings_options(command: click.Command) -> dict[str, click.Option]:
    """The command's settings by config key: its options that reach the command as values.

    ``--help``, ``--version`` and ``--config-file`` itself do not (they are
    not settings).
    """
    options = {}
    for parameter in command.params:
        if isinstance(parameter, click.Option) and parameter.expose_value:
            key = _long_name(parameter)
            if key is not None:
                options[key] = parameter
    return options


def config_file(context: click.Context) -> ConfigFile | None:
    """The config file the run looked at (``None`` before the group's options were read)."""
    found: ConfigFile | None = context.find_root().meta.get(_META_KEY)
    return found


def settings_in_force(context: click.Context) -> list[Setting]:
    """Every setting of the command group, with its value and where it came from."""
    root = context.find_root()
    return [
        Setting(
            key,
            root.params.get(option.name),
            option.default,
            origin_of(root.get_parameter_source(option.name)),
            _first_envvar(option),
        )
        for key, option in settings_options(root.command).items()
        if option.name is not None
    ]


def origin_of(source: ParameterSource | None) -> Origin:
    """click's word for a value's source, in ours."""
    return {
        ParameterSource.COMMANDLINE: Origin.COMMAND_LINE,
        ParameterSource.ENVIRONMENT: Origin.ENVIRONMENT,
        ParameterSource.DEFAULT_MAP: Origin.CONFIG_FILE,
    }.get(source or ParameterSource.DEFAULT, Origin.DEFAULT)


def _require_trusted(path: Path, status: os.stat_result) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise SettingsError(f"config file {path} is not a regular file")
    why = "the hook runs as root and the file can name a program to run"
    trust.require(status, path, subject=f"config file {path}", why=why, error=SettingsError)


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    import tomllib  # noqa: PLC0415 (only nodes that have the file pay for the parser)

    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise SettingsError(f"config file {path} is not UTF-8 (byte {error.start})") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None
    except ValueError:  # tomllib lets int()'s refusal of a very long integer through
        raise SettingsError(
            f"config file {path} holds a number of more than {sys.get_int_max_str_digits()} digits"
        ) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise SettingsError(f"config file {path} is nested too deeply to be read") from None


def _converted(option: click.Option, value: Any, context: click.Context, where: str) -> Any:
    """*value* as *option* takes it, after checking its TOML type (no "30" for a number)."""
    expected, kind = _toml_type(option)
    wants_bool = expected == (bool,)
    if isinstance(value, bool) != wants_bool or not isinstance(value, expected):
        shown = reprlib.repr(value)
        raise SettingsError(f"{where}: expected {kind}, not {_toml_kind(value)} {shown}")
    if isinstance(value, str) and not value:
        raise SettingsError(f"{where}: must not be empty")
    if isinstance(value, str) and "\0" in value:
        raise SettingsError(f"{where}: holds a NUL character, which no path or name can hold")
    try:
        return option.type.convert(value, option, context)
    except click.BadParameter as error:
        raise SettingsError(f"{where}: {error.message}") from None


def _toml_type(option: click.Option) -> tuple[tuple[type, ...], str]:
    if option.is_flag:
        return (bool,), "true or false"
    if isinstance(option.type, click.types.FloatParamType):
        return (int, float), "a number"
    if isinstance(option.type, click.types.IntParamType):
        return (int,), "a whole number"
    return (str,), "a string"


def _toml_kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({dict: "a table", list: "an array"})
    return names.get(type(value), "a date or time")


def _long_name(option: click.Option) -> str | None:
    names = [name for name in option.opts if name.startswith("--")]
    return names[0].removeprefix("--") if names else None


def _first_envvar(option: click.Option) -> str | None:
    if isinstance(option.envvar, str):
        return option.envvar
    return option.envvar[0] if option.envvar else None
