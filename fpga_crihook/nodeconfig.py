"""The node config file: settings for a hook that the runtime runs without any env.

Intel's device plugin attaches the hook through a CDI spec that passes no
``env``, so a node that needs another store, programmer or log file says so
in ``/etc/fpga-crihook/config.toml`` (``FPGA_CRIHOOK_CONFIG`` names another
file). Its keys are the settings' keys in :data:`~fpga_crihook.settings.SCHEMA`,
their long option names (``sysfs``, ``lock-dir``, ``dry-run``, ...), so every
setting is a key; each value is checked and converted as the setting takes it.
What the file sets stands below options and env vars: the command group gives
it to click as defaults (option > env var > config file > default).

The hook runs as root and the file can name an executable (``fpgaconf``), so
it is trusted as sudo and sshd trust theirs: a regular file (not a symlink)
owned by root, or by the user running the command (who could run anything
anyway), and not writable by group or others. Those checks are made on the
descriptor that is then read, so the file cannot be swapped in between.
"""

import errno
import os
import reprlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fpga_crihook import files, trust
from fpga_crihook.errors import SettingsError
from fpga_crihook.settings import CONFIG_FILE, IN_CONFIG_FILE, Kind, Setting

ENV_VAR = CONFIG_FILE.env_var  # the variable that names another file
MAX_BYTES = 64 << 10
_KEYS = {setting.key: setting for setting in IN_CONFIG_FILE}
# What TOML type each kind of value takes (no "30" for a number); any other kind: a string.
_TOML_TYPES = {Kind.FLAG: ((bool,), "true or false"), Kind.SECONDS: ((int, float), "a number")}


def load(path: Path) -> Mapping[str, object] | None:
    """The value of each setting the config file at *path* sets, by key, as the setting
    takes it; ``None`` when there is no such file.

    Raises :class:`SettingsError` naming the file (and the key) when the file
    is not trusted, not TOML, or holds an unknown key or a bad value.
    """
    document = read(path)
    return None if document is None else values(document, path)


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
    why = "the hook runs as root and the file can name a program to run"
    fd = trust.require_open(fd, path, subject=f"config file {path}", why=why, error=SettingsError)
    try:
        raw = files.read_at_most(fd, MAX_BYTES)
    except files.TooLarge:
        raise SettingsError(f"config file {path} is larger than {MAX_BYTES} bytes") from None
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    finally:
        os.close(fd)
    return _parse(path, raw)


def values(document: dict[str, Any], path: Path) -> dict[str, object]:
    """Each setting's value in *document*: every key a setting's, every value valid."""
    found: dict[str, object] = {}
    for key, value in document.items():
        setting = _KEYS.get(key)
        if setting is None:
            raise SettingsError(
                f"config file {path}: unknown key {key!r} (the keys are the long option "
                f"names: {', '.join(sorted(_KEYS))})"
            )
        found[key] = _converted(setting, value, f"config file {path}: key {key!r}")
    return found


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


def _converted(setting: Setting, value: Any, where: str) -> Any:
    """*value* as *setting* takes it, after checking its TOML type (no "30" for a number)."""
    expected, kind = _TOML_TYPES.get(setting.kind, ((str,), "a string"))
    wants_bool = expected == (bool,)
    if isinstance(value, bool) != wants_bool or not isinstance(value, expected):
        shown = reprlib.repr(value)
        raise SettingsError(f"{where}: expected {kind}, not {_toml_kind(value)} {shown}")
    if isinstance(value, str) and not value:
        raise SettingsError(f"{where}: must not be empty")
    if isinstance(value, str) and "\0" in value:
        raise SettingsError(f"{where}: holds a NUL character, which no path or name can hold")
    try:
        return setting.convert(value)
    except ValueError as error:
        raise SettingsError(f"{where}: {error}") from None


def _toml_kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({dict: "a table", list: "an array"})
    return names.get(type(value), "a date or time")
