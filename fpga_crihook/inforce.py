"""The settings in force for one run: each setting's value and where it came from.

The command group resolves every setting of :data:`~fpga_crihook.settings.SCHEMA`
(option > env var > config file > default) and hands its commands one
:class:`SettingsInForce`: the :class:`~fpga_crihook.settings.Settings` the code
below the CLI takes, and each setting with its origin, for ``check``'s report
and ``cdi generate``'s hook env. It is a plain value: nothing here asks click.
"""

import enum
from pathlib import Path
from typing import Any, NamedTuple

from fpga_crihook.errors import SettingsError
from fpga_crihook.settings import CONFIG_FILE, Setting, Settings


class Origin(enum.StrEnum):
    """Where a setting in force came from, in order of precedence."""

    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"
    CONFIG_FILE = "config file"
    DEFAULT = "default"


# Given for this run: a log level or format from these asks for the events on stderr, and
# cdi generate passes these on to the hook (the config file is read by the hook itself).
GIVEN = (Origin.COMMAND_LINE, Origin.ENVIRONMENT)


class ConfigFile(NamedTuple):
    """The config file a run looked at, and whether it was there."""

    path: Path
    found: bool
    named_by: Origin  # DEFAULT, or how another path was given


def env_text(value: Any) -> str:
    """A setting's value as its environment variable spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class InForce(NamedTuple):
    """One setting in force: its declaration, value and origin."""

    setting: Setting
    value: Any
    origin: Origin

    @property
    def key(self) -> str:
        """The setting's key (its long option name)."""
        return self.setting.key

    @property
    def env_var(self) -> str:
        """The setting's environment variable."""
        return self.setting.env_var

    @property
    def is_default(self) -> bool:
        """True when the value is the built-in default (``/sys`` and ``Path("/sys")`` alike)."""
        default = self.setting.default
        if self.value is None or default is None:
            return self.value is default
        return env_text(self.value) == env_text(default)

    def as_env(self) -> str | None:
        """``VAR=value`` that gives the hook this setting, or ``None`` for no value."""
        if self.value is None:
            return None
        return f"{self.env_var}={env_text(self.value)}"

    def source(self, config_path: Path) -> str:
        """Where the value was given, as an error sentence names it."""
        if self.origin is Origin.ENVIRONMENT:
            return f"env var {self.env_var}"
        if self.origin is Origin.CONFIG_FILE:
            return f"config file {config_path}: key {self.key!r}"
        return f"option {self.setting.option}"


class SettingsInForce(NamedTuple):
    """Everything the command group resolved for one run."""

    settings: Settings
    entries: tuple[InForce, ...]  # every setting a config file may hold, in the schema's order
    config_file: ConfigFile

    def entry(self, key: str) -> InForce:
        """The setting in force whose key is *key*."""
        return next(entry for entry in self.entries if entry.key == key)

    def value(self, key: str) -> Any:
        """The value in force of the setting whose key is *key*."""
        return self.entry(key).value

    @property
    def asks_for_events(self) -> bool:
        """True when a log level or format was given as an option or an env var: someone
        asked for this run's events on stderr (the config file only sets what the journal
        and the log file get)."""
        return any(e.setting.asks_for_events and e.origin in GIVEN for e in self.entries)

    def require_absolute_paths(self) -> None:
        """Refuse a relative path where the runtime runs the hook: runc and crun run hooks in
        the container's bundle directory, so each container would get its own lock
        directory, and a path could lead into the container's own files."""
        config = self.config_file
        for entry in (InForce(CONFIG_FILE, config.path, config.named_by), *self.entries):
            if entry.setting.is_relative_path(entry.value):
                raise SettingsError(
                    f"{entry.source(config.path)}: {env_text(entry.value)} is a relative path, "
                    "but the runtime runs the hook in the container's bundle directory: "
                    "give an absolute path"
                )
