"""The ``fpga-crihook`` command line: settings in, one call into the library, exit status out.

Settings are options of the command group, each also read from an
``FPGA_CRIHOOK_*`` environment variable (hooks.d ``env`` is how operators
set them) and from the node config file (:mod:`fpga_crihook.nodeconfig`).
Every failure is one error line and a failure status: for the hook, its
class's :class:`~fpga_crihook.errors.ExitStatus`; for the operator commands, 1.
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
from fpga_crihook.deadline import DEFAULT_DEADLINE, Deadline
from fpga_crihook.errors import BitstreamError, ExitStatus, HookError, SettingsError
from fpga_crihook.settings import (
    PathSetting,
    ProgrammerKind,
    Seconds,
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


def _read_config_file(context: click.Context, parameter: click.Parameter, path: Path) -> None:
    """Load the node config file into the group's defaults, before any setting is read."""
    assert parameter.name is not None
    named_by = nodeconfig.origin_of(context.get_parameter_source(parameter.name))
    try:
        nodeconfig.load_defaults(context, path, named_by)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config-file",
    envvar=nodeconfig.ENV_VAR,
    show_envvar=True,
    default=nodeconfig.DEFAULT_PATH,
    show_default=True,
    type=PathSetting(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_read_config_file,
    help="Node config file (TOML): settings under their long option names. "
    "Option > env var > config file > default; a missing file is fine.",
)
@click.option(
    "--sysfs",
    envvar="FPGA_CRIHOOK_SYSFS",
    show_envvar=True,
    default="/sys",
    show_default=True,
    type=PathSetting(),
    help="Root of the sysfs tree.",
)
@click.option(
    "--devfs",
    envvar="FPGA_CRIHOOK_DEVFS",
    show_envvar=True,
    default="/dev",
    show_default=True,
    type=PathSetting(),
    help="Root of the device nodes.",
)
@click.option(
    "--bitstreams",
    envvar="FPGA_CRIHOOK_BITSTREAMS",
    show_envvar=True,
    default="/srv/intel.com/fpga",
    show_default=True,
    type=PathSetting(),
    help="Bitstream store: <interface-id>/<afu-id>.gbs or .aocx.",
)
@click.option(
    "--programmer",
    envvar="FPGA_CRIHOOK_PROGRAMMER",
    show_envvar=True,
    default="ioctl",
    show_default=True,
    type=click.Choice([kind.value for kind in ProgrammerKind]),
    help="ioctl (kernel PR ioctl), fpgaconf (OPAE tool) or sim (simulated sysfs only).",
)
@click.option(
    "--fpgaconf",
    envvar="FPGA_CRIHOOK_FPGACONF",
    show_envvar=True,
    default="fpgaconf",
    show_default=True,
    help="The fpgaconf executable (looked up on PATH).",
)
@click.option(
    "--fpgaconf-timeout",
    envvar="FPGA_CRIHOOK_FPGACONF_TIMEOUT",
    show_envvar=True,
    default=60.0,
    show_default=True,
    type=Seconds(),
    help="Seconds fpgaconf may take before it is killed and programming fails.",
)
@click.option(
    "--lock-dir",
    envvar="FPGA_CRIHOOK_LOCK_DIR",
    show_envvar=True,
    default="/run/fpga-crihook",
    show_default=True,
    type=PathSetting(),
    help="Directory of the per-FME lock files.",
)
@click.option(
    "--lock-timeout",
    envvar="FPGA_CRIHOOK_LOCK_TIMEOUT",
    show_envvar=True,
    default=30.0,
    show_default=True,
    type=Seconds(),
    help="Seconds to wait for another hook to release an FME.",
)
@click.option(
    "--busy-timeout",
    envvar="FPGA_CRIHOOK_BUSY_TIMEOUT",
    show_envvar=True,
    default=3.0,
    show_default=True,
    type=Seconds(),
    help="Seconds to retry sysfs reads and exclusive device opens that fail with EBUSY.",
)
@click.option(
    "--deadline",
    envvar="FPGA_CRIHOOK_DEADLINE",
    show_envvar=True,
    default=DEFAULT_DEADLINE,
    show_default=True,
    type=Seconds(above_zero=True),
    help="Seconds the whole run may take, every wait included (keep it below the hooks.d timeout).",
)
@click.option(
    "--dry-run/--no-dry-run",
    envvar="FPGA_CRIHOOK_DRY_RUN",
    show_envvar=True,
    default=False,
    help="Do every check but program nothing.",
)
@click.option(
    "--log-level",
    envvar="FPGA_CRIHOOK_LOG_LEVEL",
    show_envvar=True,
    default="info",
    show_default=True,
    type=click.Choice(logs.LEVELS, case_sensitive=False),
)
@click.option(
    "--log-format",
    envvar="FPGA_CRIHOOK_LOG_FORMAT",
    show_envvar=True,
    default="json",
    show_default=True,
    type=click.Choice([fmt.value for fmt in logs.LogFormat]),
)
@click.option(
    "--log-file",
    envvar="FPGA_CRIHOOK_LOG_FILE",
    show_envvar=True,
    default=None,
    type=PathSetting(),
    help="Also append events to this file (a regular file).",
)
@click.option(
    "--syslog",
    envvar="FPGA_CRIHOOK_SYSLOG",
    show_envvar=True,
    default=logs.SYSLOG_AUTO,
    show_default=True,
    metavar="auto|off|SOCKET",
    help="Send events to syslog (the journal): auto means /dev/log when it exists.",
)
@click.option(
    "--metrics-dir",
    envvar="FPGA_CRIHOOK_METRICS_DIR",
    show_envvar=True,
    default=None,
    type=PathSetting(),
    help="Keep fpga_crihook.prom here for node-exporter's textfile collector.",
)
@click.version_option(package_name="fpga-crihook")
@click.pass_context
def cli(
    context: click.Context,
    sysfs: Path,
    devfs: Path,
    bitstreams: Path,
    programmer: str,
    fpgaconf: str,
    fpgaconf_timeout: float,
    lock_dir: Path,
    lock_timeout: float,
    busy_timeout: float,
    deadline: float,
    dry_run: bool,
    log_level: str,
    log_format: str,
    log_file: Path | None,
    syslog: str,
    metrics_dir: Path | None,
) -> None:
    """Program Intel FPGA ports with the accelerator a container asks for.

    CRI-O runs `fpga-crihook prestart` before an FPGA container starts; the
    other commands help operators see and prepare what the hook uses.
    """
    run_deadline = Deadline.start(deadline)  # first: the whole run counts
    if context.invoked_subcommand in HOOK_COMMANDS:
        _require_absolute_paths(context)  # before the log file is opened
    context.meta[_SINKS] = logs.configure(
        log_level,
        logs.LogFormat(log_format),
        log_file,
        syslog=syslog,
        stderr=logs.StderrFacts(
            on_terminal=os.isatty(logs.STDERR),
            events_asked_for=_asked_for_events(context),
            format_chosen=_source(context, "log_format") is not ParameterSource.DEFAULT,
        ),
    )
    context.obj = Settings(
        sysfs=sysfs,
        devfs=devfs,
        bitstreams=bitstreams,
        programmer=ProgrammerKind(programmer),
        fpgaconf=fpgaconf,
        fpgaconf_timeout=fpgaconf_timeout,
        lock_dir=lock_dir,
        dry_run=dry_run,
        lock_timeout=lock_timeout,
        busy_timeout=busy_timeout,
        metrics_dir=metrics_dir,
        deadline=run_deadline,
    )


def _require_absolute_paths(context: click.Context) -> None:
    """Refuse a relative path where the runtime runs the hook: runc and crun run hooks in
    the container's bundle directory, so each container would get its own lock
    directory, and a path could lead into the container's own files."""
    config = nodeconfig.config_file(context)
    if config is not None and not config.path.is_absolute():
        where = (
            "option --config-file"
            if config.named_by is nodeconfig.Origin.COMMAND_LINE
            else f"env var {nodeconfig.ENV_VAR}"
        )
        raise click.ClickException(_relative_path_sentence(where, str(config.path)))
    for setting in nodeconfig.settings_in_force(context):
        if _is_relative_path(setting):
            raise click.ClickException(
                _relative_path_sentence(_source_of(setting, config), str(setting.value))
            )


def _is_relative_path(setting: nodeconfig.Setting) -> bool:
    value = setting.value
    if isinstance(value, Path):
        return not value.is_absolute()
    if setting.key == "syslog":
        return value not in (logs.SYSLOG_AUTO, logs.SYSLOG_OFF) and not os.path.isabs(value)
    if setting.key == "fpgaconf":  # a bare name is looked up on PATH
        return "/" in value and not os.path.isabs(value)
    return False


def _source_of(setting: nodeconfig.Setting, config: nodeconfig.ConfigFile | None) -> str:
    if setting.origin is nodeconfig.Origin.ENVIRONMENT:
        return f"env var {setting.envvar}"
    if setting.origin is nodeconfig.Origin.CONFIG_FILE and config is not None:
        return f"config file {config.path}: key {setting.key!r}"
    return f"option --{setting.key}"


def _relative_path_sentence(where: str, value: str) -> str:
    return (
        f"{where}: {value} is a relative path, but the runtime runs the hook in the "
        "container's bundle directory: give an absolute path"
    )


def _asked_for_events(context: click.Context) -> bool:
    """True when someone asked for this run's events on stderr: --log-level or --log-format
    given as an option or an environment variable.

    The node config file is not such a request: it sets the level of what the journal
    and the log file get on every run.
    """
    asking = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return any(_source(context, name) in asking for name in ("log_level", "log_format"))


def _source(context: click.Context, name: str) -> ParameterSource:
    return context.get_parameter_source(name) or ParameterSource.DEFAULT


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
    settings: Settings,
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
def devices(settings: Settings, as_json: bool) -> None:
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
def program(settings: Settings, device: str, dry_run: bool, force: bool, file: Path) -> None:
    """Program one port with a bitstream file by hand, with the hook's checks.

    The file must be built for the region of the port's FME, the card must be
    healthy, the FME lock is taken, and the port must report the file's AFU
    afterwards. The programmer is the one the settings name.

    \b
    Example:
        fpga-crihook program --port /dev/dfl-port.0 nlb_3.gbs
    """
    from fpga_crihook.commands import program as manual  # noqa: PLC0415

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
def install(settings: Settings, afu_id: str | None, force: bool, file: Path) -> None:
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

    result = installing.install(file, settings.bitstreams, afu_id, force)
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

    settings: Settings = context.obj
    in_force = nodeconfig.settings_in_force(context)
    findings = checks.config_findings(nodeconfig.config_file(context), in_force)
    crio = engineconfig.read_crio(
        crio_config or engineconfig.CRIO_CONFIG, crio_config_dir or engineconfig.CRIO_CONFIG_DIR
    )
    findings += engines.runtime_findings(crio, in_force)
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
    spec, notes = specs.generate(
        context.obj,
        specs.installed_hook(hook_path),
        nodeconfig.settings_in_force(context),
        nodeconfig.config_file(context),
    )
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
        # Before any command ran: a bad option, variable or config file.
        logs.say(f"{logs.IDENTIFIER}: {error.format_message()}")
        status = _failure_status(error, _invoked_command(arguments) in HOOK_COMMANDS)
    except click.Abort:
        status = EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 (a bug before any command ran: no traceback)
        logs.say(f"{logs.IDENTIFIER}: {_sentence(error)}")
        status = _failure_status(error, _invoked_command(arguments) in HOOK_COMMANDS)
    sys.exit(status if isinstance(status, int) else 0)


def _invoked_command(arguments: list[str]) -> str | None:
    """The command *arguments* name after the group's options (None: none), as click reads
    them, running no option's callback and raising for nothing."""
    context = click.Context(cli, ignore_unknown_options=True, resilient_parsing=True)
    _, rest, _ = cli.make_parser(context).parse_args(list(arguments))
    return next((word for word in rest if not word.startswith("-")), None)
