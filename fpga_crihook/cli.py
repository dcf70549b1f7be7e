"""The ``fpga-crihook`` command line: settings in, one call into the library, exit status out.

The group's options come from :data:`~fpga_crihook.settings.SCHEMA`: each
setting is an option, an ``FPGA_CRIHOOK_*`` environment variable (hooks.d
``env`` is how operators set them) and a key of the node config file
(:mod:`fpga_crihook.nodeconfig`). Every failure is one error line and a
failure status: for the hook, its class's
:class:`~fpga_crihook.errors.ExitStatus`; for the operator commands, 1.
"""

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
import structlog
from click.core import ParameterSource

from fpga_crihook import logs, nodeconfig
from fpga_crihook.deadline import Deadline
from fpga_crihook.errors import BitstreamError, ExitStatus, HookError, SettingsError
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

if TYPE_CHECKING:
    from fpga_crihook.hook import Progress
    from fpga_crihook.oci import State

_P = ParamSpec("_P")
_R = TypeVar("_R")

EXIT_FAILURE = 1  # the operator commands' failure status
HOOK_COMMANDS = ("prestart", "createRuntime")  # what runtimes run, in the bundle directory
_SINKS = "fpga_crihook.sinks"  # in the context's meta: where this run's events go
_ORIGINS = {
    ParameterSource.COMMANDLINE: Origin.COMMAND_LINE,
    ParameterSource.ENVIRONMENT: Origin.ENVIRONMENT,
    ParameterSource.DEFAULT_MAP: Origin.CONFIG_FILE,
}


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


def _annotations(
    _context: click.Context, _parameter: click.Parameter, texts: tuple[str, ...]
) -> dict[str, str] | None:
    """``--annotation KEY=VALUE`` options as a mapping (``None``: none given; ``''``: adds none)."""
    if not texts:
        return None
    annotations: dict[str, str] = {}
    for text in filter(None, texts):
        key, equals, value = text.partition("=")
        if not key or not equals:
            raise click.BadParameter(f"{text!r} is not KEY=VALUE ('' for no annotations)")
        if key in annotations:
            raise click.BadParameter(f"{key!r} is given more than once")
        annotations[key] = value
    return annotations


def _exit_status_table() -> str:
    lines = (f"  {status.value:>3}  {status.meaning}" for status in ExitStatus)
    return "\b\nExit status:\n" + "\n".join(lines)


@cli.command("prestart", epilog=_exit_status_table())
@click.option(
    "--cdi",
    "trigger",
    flag_value="cdi",
    help="The hook comes from a CDI spec of fpga-crihook (cdi generate): the container "
    "asked for an FPGA device by its CDI name, so run without the region annotation.",
)
@click.option(
    "--intel-cdi",
    "trigger",
    flag_value="intel-cdi",
    help="The hook comes from the CDI spec of Intel's FPGA device plugin, which it writes "
    "only in region mode: run as for a container with the region annotation, whether or "
    "not the runtime passed it on (containerd passes none). intel-fpga-crihook runs this.",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Run by hand on FILE as the bundle's config.json; no state is read from stdin.",
)
@click.option(
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_annotations,
    help="With --config: an annotation of the container, repeatable; '' for none "
    "(default: com.intel.fpga.mode=fpga.intel.com/region).",
)
@click.pass_obj
@_reports_errors
def prestart(
    given: SettingsInForce,
    trigger: str | None,
    config_file: Path | None,
    annotations: dict[str, str] | None,
) -> None:
    """Run as the OCI prestart hook: read the container state on stdin.

    Exit 0 when every requested accelerator is in place (or the container is
    not an FPGA region container); otherwise the container does not start,
    and the exit status says why (below; under crun it is all the pod's event
    says). With --config, run the hook by hand on a sample config.json (the
    container's id is "manual", its bundle the file's directory).

    \b
    Example (what CRI-O does, then a run by hand):
        fpga-crihook prestart < state.json
        fpga-crihook --dry-run prestart --config testdata/config.json
    """
    from fpga_crihook.oci import Trigger  # noqa: PLC0415 (keep --help fast)

    settings = given.settings
    settings.check()
    state = _container_state(config_file, annotations)
    hook_trigger = Trigger.ANNOTATION if trigger is None else Trigger(trigger)
    if hook_trigger is Trigger.ANNOTATION and not state.is_fpga_region_container:
        # Most containers on a node are not ours: leave before importing the rest.
        structlog.get_logger().debug(
            "not an FPGA region container: nothing to do", container_id=state.id
        )
        return
    from fpga_crihook.hook import Progress, run_prestart  # noqa: PLC0415

    progress = Progress()
    succeeded = False
    try:
        run_prestart(state, settings, progress, hook_trigger, config_file=config_file)
        succeeded = True
    finally:
        if settings.metrics_dir is not None:
            _record_metrics(settings.metrics_dir, progress, not succeeded, settings.deadline)


def _container_state(config_file: Path | None, annotations: dict[str, str] | None) -> "State":
    """The state the runtime wrote on stdin or, for a run by hand, a made-up one."""
    from fpga_crihook import oci  # noqa: PLC0415 (keep --help fast)

    if config_file is not None:
        return oci.manual_state(config_file, annotations)
    if annotations is not None:
        raise SettingsError("--annotation only applies to a run by hand with --config FILE")
    return oci.read_state(sys.stdin.buffer)


cli.add_command(prestart, "createRuntime")


def _record_metrics(
    directory: Path, progress: "Progress", failed: bool, deadline: Deadline
) -> None:
    from fpga_crihook import metrics  # noqa: PLC0415 (only runs that write metrics)

    outcomes = progress.outcomes(failed)
    metrics.record(
        directory,
        [metrics.PortOutcome(port, str(outcome), seconds) for port, outcome, seconds in outcomes],
        deadline=deadline,
    )


_JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


@cli.command("devices")
@_JSON_OPTION
@click.pass_obj
@_reports_errors
def devices(given: SettingsInForce, as_json: bool) -> None:
    """List the FPGA cards, FMEs and ports under the sysfs root.

    For each port: driver, PCI address, FME device node and region interface
    ID, port device node, port number, AFU ID and health (healthy, unhealthy,
    busy or unreadable), and with --metrics-dir how often the hook programmed,
    skipped and failed on it; then the resource names the Intel FPGA device
    plugin announces (region and af mode).

    \b
    Example:
        fpga-crihook devices
        fpga-crihook --sysfs testdata/node/sys devices --json
    """
    from fpga_crihook.commands import devices as listing  # noqa: PLC0415 (keep --help fast)

    settings = given.settings
    cards = listing.scan(settings)
    counts = None
    if settings.metrics_dir is not None:
        from fpga_crihook import metrics  # noqa: PLC0415

        counts = metrics.port_counts(settings.metrics_dir)
    _echo(
        listing.as_json(cards, counts) if as_json else listing.table(cards, settings.sysfs, counts)
    )


@cli.command("gbs-info")
@_JSON_OPTION
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_reports_errors
def gbs_info(file: Path, as_json: bool) -> None:
    """Show what a GBS or AOCX bitstream holds, after validating it like the hook.

    Kind, interface ID, AFU ID(s), accelerator name(s), platform, the user
    clocks it asks for, power, magic-no, sizes (file, metadata, raw
    bitstream) and, for an AOCX, its board, target, version and hash. A
    file OPAE's runtime would refuse is shown, then the command fails with
    the rules it breaks.

    \b
    Example:
        fpga-crihook gbs-info /srv/intel.com/fpga/ce48.../d842....gbs
    """
    from fpga_crihook.commands import gbs_info as showing  # noqa: PLC0415

    info = showing.describe(file)
    _echo(showing.as_json(info) if as_json else showing.text(info))
    if info.opae_refusal is not None:
        raise BitstreamError(info.opae_refusal)


@cli.command("program")
@click.option(
    "--port",
    "device",
    required=True,
    metavar="DEV",
    help="The port: a device path (/dev/dfl-port.0) or a port name (dfl-port.0).",
)
@click.option("--dry-run", is_flag=True, help="Do every check but program nothing.")
@click.option("--force", is_flag=True, help="Program even if the port holds the AFU already.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
@_reports_errors
def program(given: SettingsInForce, device: str, dry_run: bool, force: bool, file: Path) -> None:
    """Program one port with a bitstream file by hand, with the hook's checks.

    The file must be built for the region of the port's FME, the card must be
    healthy, the FME lock is taken, and the port must report the file's AFU
    afterwards. The programmer is the one the settings name.

    \b
    Example:
        fpga-crihook program --port /dev/dfl-port.0 nlb_3.gbs
    """
    from fpga_crihook.commands import program as manual  # noqa: PLC0415

    settings = given.settings
    settings = dataclasses.replace(settings, dry_run=settings.dry_run or dry_run)
    settings.check()
    _echo(manual.summary(manual.program_file(device, file, settings, force), file))


@cli.command("install")
@click.option(
    "--afu-id",
    default=None,
    metavar="ID",
    help="For an AOCX (required there, refused for a GBS): the AFU ID pods request it by.",
)
@click.option("--force", is_flag=True, help="Replace a different file installed under that name.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
@_reports_errors
def install(given: SettingsInForce, afu_id: str | None, force: bool, file: Path) -> None:
    """Copy a GBS or AOCX into the bitstream store under the name the hook looks up.

    A GBS goes to <interface-id>/<afu-id>.gbs from its metadata; an AOCX to
    <interface-id>/<ID>.aocx with --afu-id ID. The file is validated first
    and appears in one atomic rename; an identical file already there is
    left alone, a different one is only replaced with --force.

    \b
    Example:
        fpga-crihook install nlb_3.gbs
        fpga-crihook install --afu-id 18b79ffa2ee54aa096ef4230dafacb5f vector_add.aocx
    """
    from fpga_crihook.commands import install as installing  # noqa: PLC0415

    result = installing.install(file, given.settings.bitstreams, afu_id, force)
    _echo(installing.summary(result, file))


@cli.command("check")
@click.option(
    "--hooks-dir",
    "hooks_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A hooks.d directory the runtime reads, searched when no FILE is given "
    "(default: /usr/share/containers/oci/hooks.d, /etc/containers/oci/hooks.d).",
)
@click.option(
    "--cdi-spec-dir",
    "cdi_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A CDI spec directory, searched when no FILE is given (default: /etc/cdi, /var/run/cdi).",
)
@click.option(
    "--crio-config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="CRI-O's config file, read for the directories CRI-O reads (hooks_dir, "
    "cdi_spec_dirs; default: /etc/crio/crio.conf).",
)
@click.option(
    "--crio-config-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="CRI-O's drop-in config directory, read after --crio-config as CRI-O does "
    "(default: /etc/crio/crio.conf.d).",
)
@click.option(
    "--containerd-config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="containerd's config file, with its imports: CDI on or off, and its spec "
    "directories (default: /etc/containerd/config.toml).",
)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@_reports_errors
def check(
    context: click.Context,
    hooks_dirs: tuple[Path, ...],
    cdi_dirs: tuple[Path, ...],
    crio_config: Path | None,
    crio_config_dir: Path | None,
    containerd_config: Path | None,
    files: tuple[Path, ...],
) -> None:
    """Validate hooks.d files, CDI specs and this node's set-up; exit 1 on any error.

    First the node config file and every setting in force, with where it
    came from. Each hooks.d file is checked against the hooks.d 1.0.0 format
    and for what fpga-crihook needs; each CDI spec for the hooks that run
    fpga-crihook; a hooks.d file and a CDI spec that would both run it for
    one container are an error. Without FILE: the hooks.d file this package
    ships and every file in the runtimes' hooks.d and CDI directories that
    runs fpga-crihook, CRI-O's own hooks_dir and the engines' CDI spec
    directories included. Where CRI-O's or containerd's config is on the node:
    the directories each reads, containerd's CDI switch, and an error for a
    hooks.d file or CDI spec no engine reads. Then the node: FPGA drivers and
    cards, FME device nodes, the bitstream store. One line per finding: "ok:",
    "warning:" or "error:".

    \b
    Example:
        fpga-crihook check /etc/containers/oci/hooks.d/intel-fpga-crihook.json
        fpga-crihook check /var/run/cdi/intel.cdi.k8s.io-fpga.json
        fpga-crihook check
    """
    from fpga_crihook import engineconfig  # noqa: PLC0415
    from fpga_crihook.commands import check as checks  # noqa: PLC0415
    from fpga_crihook.commands import engines  # noqa: PLC0415

    given: SettingsInForce = context.obj
    settings = given.settings
    findings = checks.config_findings(given)
    crio = engineconfig.read_crio(
        crio_config or engineconfig.CRIO_CONFIG, crio_config_dir or engineconfig.CRIO_CONFIG_DIR
    )
    findings += engines.runtime_findings(crio, given)
    containerd = engineconfig.read_containerd(containerd_config or engineconfig.CONTAINERD_CONFIG)
    if files:
        findings += engines.engine_findings(crio, containerd, list(files))
        findings += checks.run_checks(list(files), settings, installed=list(files))
    else:
        searched_hooks = list(hooks_dirs) or engines.hooks_dirs_to_search(crio)
        searched_specs = list(cdi_dirs) or engines.cdi_dirs_to_search(crio, containerd)
        installed = checks.installed_files(searched_hooks, searched_specs)
        findings += checks.installed_findings(installed, [*searched_hooks, *searched_specs])
        findings += engines.engine_findings(crio, containerd, installed)
        findings += checks.run_checks(
            [checks.shipped_hooks_file(), *installed], settings, installed
        )
    _echo("\n".join(str(finding) for finding in findings))
    if checks.has_errors(findings):
        raise SystemExit(EXIT_FAILURE)


@cli.group("cdi")
def cdi() -> None:
    """Container Device Interface (CDI) specs: how containerd, CRI-O and podman run the hook
    for a container that asks for an FPGA device by name."""


@cdi.command("generate")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the spec to this file, atomically (default: stdout), "
    "e.g. /etc/cdi/intel.com-fpga.json.",
)
@click.option(
    "--format",
    "spec_format",
    type=click.Choice(["json", "yaml"]),
    default=None,
    help="json or yaml (default: what the --output name ends with, else json).",
)
@click.option(
    "--hook-path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The fpga-crihook the runtime runs (default: this installation's).",
)
@click.pass_context
@_reports_errors
def cdi_generate(
    context: click.Context, output: Path | None, spec_format: str | None, hook_path: Path | None
) -> None:
    """Write a CDI spec for this node's FPGA ports (kind intel.com/fpga).

    One device per port, named after it (dfl-port.0, intel-fpga-port.0), and
    "all"; the spec's createRuntime hook is `fpga-crihook createRuntime --cdi`,
    with the settings this command was given in its env. A container that
    asks for a device then gets the port, programmed with the accelerator its
    FPGA_REGION_N / FPGA_AFU_N variables name, without the region annotation.

    \b
    Example:
        fpga-crihook cdi generate --output /etc/cdi/intel.com-fpga.json
        podman run --device intel.com/fpga=dfl-port.0 \\
          -e FPGA_REGION_1=ce48... -e FPGA_AFU_1=f7df... IMAGE
    """
    from fpga_crihook.commands import cdi as specs  # noqa: PLC0415

    chosen = specs.output_format(spec_format, output)
    given: SettingsInForce = context.obj
    spec, notes = specs.generate(given.settings, specs.installed_hook(hook_path), given)
    text = specs.render(spec, chosen)
    for note in notes + (specs.output_notes(output) if output is not None else []):
        click.echo(note, err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    specs.write_atomically(text, output)
    _echo(f"wrote {output}: kind {spec.kind}, devices {', '.join(spec.device_names)}")


def _echo(output: str | dict[str, Any]) -> None:
    """Output for people (text) or scripts (JSON) on stdout."""
    click.echo(output if isinstance(output, str) else json.dumps(output, indent=2))


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
