"""The ``fpga-crihook`` command line: the group, its settings, and the error boundary.

The group's options come from :data:`~fpga_crihook.settings.SCHEMA`: each
setting is an option, an ``FPGA_CRIHOOK_*`` environment variable (hooks.d
``env`` is how operators set them) and a key of the node config file
(:mod:`fpga_crihook.nodeconfig`). Each command lives in its own module and is
imported only when it runs (or ``--help`` lists it), so the hook's start
imports only its own. Every failure is one error line and a failure status:
for the hook, its class's :class:`~fpga_crihook.errors.ExitStatus`; for the
operator commands, 1.
"""

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
import structlog
from click.core import ParameterSource

from fpga_crihook import logs, nodeconfig
from fpga_crihook.deadline import Deadline
from fpga_crihook.errors import ExitStatus, HookError
from fpga_crihook.inforce import ConfigFile, InForce, Origin, SettingsInForce
from fpga_crihook.settings import (
    CONFIG_FILE,
    IN_CONFIG_FILE,
    SCHEMA,
    Kind,
    Setting,
    Settings,
    ensure_path_variable,
)

_P = ParamSpec("_P")
_R = TypeVar("_R")

EXIT_FAILURE = ExitStatus.NOT_CLASSIFIED  # the operator commands' failure status: 1
HOOK_COMMANDS = ("prestart", "createRuntime")  # what runtimes run, in the bundle directory
# Each command by name: the module that holds it, and the name of its click command there.
COMMANDS = {
    "prestart": "fpga_crihook.commands.prestart:prestart",
    "createRuntime": "fpga_crihook.commands.prestart:prestart",
    "devices": "fpga_crihook.commands.devices:devices",
    "gbs-info": "fpga_crihook.commands.gbs_info:gbs_info",
    "program": "fpga_crihook.commands.program:program",
    "install": "fpga_crihook.commands.install:install",
    "check": "fpga_crihook.commands.check:check",
    "cdi": "fpga_crihook.commands.cdi:cdi",
}
_SINKS = "fpga_crihook.sinks"  # in the context's meta: where this run's events go
_ORIGINS = {
    ParameterSource.COMMANDLINE: Origin.COMMAND_LINE,
    ParameterSource.ENVIRONMENT: Origin.ENVIRONMENT,
    ParameterSource.DEFAULT_MAP: Origin.CONFIG_FILE,
}


class _Commands(click.Group):
    """The group whose commands are imported from their modules when needed, each put
    behind the error boundary once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, click.Command] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        if target not in self._loaded:
            module, name = target.split(":")
            # The import statement's own machinery, which python -X importtime reports.
            command = getattr(__import__(module, fromlist=[name]), name)
            self._loaded[target] = _behind_the_boundary(command)
        return self._loaded[target]


def _behind_the_boundary(command: click.Command) -> click.Command:
    """*command*, whose callback (a group's: each subcommand's) reports any exception."""
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _behind_the_boundary(subcommand)
    elif command.callback is not None:
        command.callback = _reports_errors(command.callback)
    return command


def _reports_errors(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn any exception into the failure event, the operator's line and the failure status."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        context = click.get_current_context()
        name = context.command.name
        try:
            return command(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (the last line of defence: no traceback)
            failure = error
        # The same event for any failure, a bug too: operators watch for "prestart failed".
        structlog.get_logger().error(f"{name} failed", error=_sentence(failure))
        logs.report_failure(_sentence(failure), context.meta.get(_SINKS))
        raise SystemExit(_failure_status(failure, name in HOOK_COMMANDS))

    return wrapper


def _sentence(error: Exception) -> str:
    if isinstance(error, HookError):
        return str(error)
    return f"internal error: {type(error).__name__}: {error}"


def _failure_status(error: Exception, hook: bool) -> int:
    """The exit status for *error*: under crun it is all a pod's event says of a failed hook,
    so the hook's names the class of failure; the operator commands' is 1."""
    if not hook:
        return EXIT_FAILURE
    if isinstance(error, HookError):
        return error.exit_status
    if isinstance(error, click.ClickException):  # an option or a variable the hook was given
        return ExitStatus.SETTINGS
    return ExitStatus.INTERNAL


def _read_config_file(context: click.Context, parameter: click.Parameter, path: Path) -> ConfigFile:
    """Load the node config file into the group's defaults, before any setting is read."""
    values = nodeconfig.load(path)
    if values:
        names = {setting.key: setting.name for setting in IN_CONFIG_FILE}
        context.default_map = {names[key]: value for key, value in values.items()}
    return ConfigFile(path, values is not None, _origin(context, CONFIG_FILE))


def _origin(context: click.Context, setting: Setting) -> Origin:
    source = context.get_parameter_source(setting.name)
    return _ORIGINS.get(source or ParameterSource.DEFAULT, Origin.DEFAULT)


def _settings_option(setting: Setting) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The group's option for *setting*."""
    names = [
        f"{setting.option}/--no-{setting.key}" if setting.kind is Kind.FLAG else setting.option
    ]
    attributes: dict[str, Any] = {}
    if setting is CONFIG_FILE:
        attributes = {"is_eager": True, "callback": _read_config_file}
    return click.option(
        *names,
        envvar=setting.env_var,
        show_envvar=True,
        default=setting.default,
        show_default=setting.kind is not Kind.FLAG and setting.default is not None,
        type=None if setting.kind is Kind.FLAG else setting.param_type(),
        metavar=setting.metavar,
        help=setting.help,
        **attributes,
    )


def _settings_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for setting in reversed(SCHEMA):
        function = _settings_option(setting)(function)
    return function


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@_settings_options
@click.version_option(package_name="fpga-crihook")
@click.pass_context
def cli(context: click.Context, /, config_file: ConfigFile, **values: Any) -> None:
    """Program Intel FPGA ports with the accelerator a container asks for.

    CRI-O runs `fpga-crihook prestart` before an FPGA container starts; the
    other commands help operators see and prepare what the hook uses.
    """
    deadline = Deadline.start(values["deadline"])  # first: the whole run counts
    entries = tuple(
        InForce(setting, values[setting.name], _origin(context, setting))
        for setting in IN_CONFIG_FILE
    )
    in_force = SettingsInForce(Settings.from_values(values, deadline), entries, config_file)
    if context.invoked_subcommand in HOOK_COMMANDS:
        in_force.require_absolute_paths()  # before the log file is opened
    context.meta[_SINKS] = logs.configure(
        values["log_level"],
        logs.LogFormat(values["log_format"]),
        values["log_file"],
        syslog=values["syslog"],
        stderr=logs.StderrFacts(
            on_terminal=os.isatty(logs.STDERR),
            events_asked_for=in_force.asks_for_events,
            format_chosen=in_force.entry("log-format").origin is not Origin.DEFAULT,
        ),
    )
    context.obj = in_force


def main() -> None:
    """Console-script entry point: one line per error, a failure status, never a traceback."""
    _main(None, "fpga-crihook")


def intel_drop_in() -> None:
    """``intel-fpga-crihook``: ``fpga-crihook createRuntime --intel-cdi``, for Intel's CDI spec.

    Intel's FPGA device plugin names ``/opt/intel/fpga-sw/intel-fpga-crihook``
    as a createRuntime hook with no arguments and no env, in a spec it writes
    only in region mode: the hook runs as for an annotated container, and
    settings come from the node config file.
    """
    _main(["createRuntime", "--intel-cdi", *sys.argv[1:]], "intel-fpga-crihook")


def _main(args: list[str] | None, prog_name: str) -> None:
    logs.keep_standard_descriptors_open()
    ensure_path_variable(os.environ)
    arguments = sys.argv[1:] if args is None else args
    try:
        status: Any = cli.main(args=arguments, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as done:
        status = done.exit_code
    except click.ClickException as error:
        # Before any command ran: a bad option or variable.
        logs.say(f"{logs.IDENTIFIER}: {error.format_message()}")
        status = _failure_status(error, _invoked_command(arguments) in HOOK_COMMANDS)
    except click.Abort:
        status = EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 (before any command ran: a bad config file, a bug)
        logs.say(f"{logs.IDENTIFIER}: {_sentence(error)}")
        status = _failure_status(error, _invoked_command(arguments) in HOOK_COMMANDS)
    sys.exit(status if isinstance(status, int) else 0)


def _invoked_command(arguments: list[str]) -> str | None:
    """The command *arguments* name after the group's options (None: none), as click reads
    them, running no option's callback and raising for nothing."""
    context = click.Context(cli, ignore_unknown_options=True, resilient_parsing=True)
    _, rest, _ = cli.make_parser(context).parse_args(list(arguments))
    return next((word for word in rest if not word.startswith("-")), None)
