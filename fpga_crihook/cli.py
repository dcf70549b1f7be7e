"""The ``fpga-crihook`` command line: settings in, one call into the library, exit status out.

Settings are options of the command group, each also read from an
``FPGA_CRIHOOK_*`` environment variable (hooks.d ``env`` is how operators
set them). Every failure is one error line and exit status 1.
"""

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
import structlog

from fpga_crihook import logs
from fpga_crihook.errors import HookError
from fpga_crihook.settings import ProgrammerKind, Settings, ensure_path_variable

_P = ParamSpec("_P")
_R = TypeVar("_R")

EXIT_FAILURE = 1


def _reports_errors(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn the project's errors into one error event and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        name = click.get_current_context().command.name
        try:
            return command(*args, **kwargs)
        except HookError as error:
            structlog.get_logger().error(f"{name} failed", error=str(error))
        except Exception as error:  # noqa: BLE001 (the last line of defence: no traceback)
            structlog.get_logger().error(
                f"{name} failed: internal error", error=f"{type(error).__name__}: {error}"
            )
        raise SystemExit(EXIT_FAILURE)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--sysfs",
    envvar="FPGA_CRIHOOK_SYSFS",
    default="/sys",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Root of the sysfs tree.",
)
@click.option(
    "--devfs",
    envvar="FPGA_CRIHOOK_DEVFS",
    default="/dev",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Root of the device nodes.",
)
@click.option(
    "--bitstreams",
    envvar="FPGA_CRIHOOK_BITSTREAMS",
    default="/srv/intel.com/fpga",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Bitstream store: <interface-id>/<afu-id>.gbs or .aocx.",
)
@click.option(
    "--programmer",
    envvar="FPGA_CRIHOOK_PROGRAMMER",
    default="ioctl",
    show_default=True,
    type=click.Choice([kind.value for kind in ProgrammerKind]),
    help="ioctl (kernel PR ioctl), fpgaconf (OPAE tool) or sim (simulated sysfs only).",
)
@click.option(
    "--fpgaconf",
    envvar="FPGA_CRIHOOK_FPGACONF",
    default="fpgaconf",
    show_default=True,
    help="The fpgaconf executable (looked up on PATH).",
)
@click.option(
    "--lock-dir",
    envvar="FPGA_CRIHOOK_LOCK_DIR",
    default="/run/fpga-crihook",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Directory of the per-FME lock files.",
)
@click.option(
    "--lock-timeout",
    envvar="FPGA_CRIHOOK_LOCK_TIMEOUT",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for another hook to release an FME.",
)
@click.option(
    "--busy-timeout",
    envvar="FPGA_CRIHOOK_BUSY_TIMEOUT",
    default=3.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to retry sysfs reads that fail with EBUSY.",
)
@click.option(
    "--dry-run/--no-dry-run",
    envvar="FPGA_CRIHOOK_DRY_RUN",
    default=False,
    help="Do every check but program nothing.",
)
@click.option(
    "--log-level",
    envvar="FPGA_CRIHOOK_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(logs.LEVELS, case_sensitive=False),
)
@click.option(
    "--log-format",
    envvar="FPGA_CRIHOOK_LOG_FORMAT",
    default="json",
    show_default=True,
    type=click.Choice([fmt.value for fmt in logs.LogFormat]),
)
@click.option(
    "--log-file",
    envvar="FPGA_CRIHOOK_LOG_FILE",
    default=None,
    type=click.Path(path_type=Path),
    help="Also append log lines to this file.",
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
    lock_dir: Path,
    lock_timeout: float,
    busy_timeout: float,
    dry_run: bool,
    log_level: str,
    log_format: str,
    log_file: Path | None,
) -> None:
    """Program Intel FPGA ports with the accelerator a container asks for.

    CRI-O runs `fpga-crihook prestart` before an FPGA container starts; the
    other commands help operators see and prepare what the hook uses.
    """
    logs.configure(log_level, logs.LogFormat(log_format), log_file)
    context.obj = Settings(
        sysfs=sysfs,
        devfs=devfs,
        bitstreams=bitstreams,
        programmer=ProgrammerKind(programmer),
        fpgaconf=fpgaconf,
        lock_dir=lock_dir,
        dry_run=dry_run,
        lock_timeout=lock_timeout,
        busy_timeout=busy_timeout,
    )


@cli.command("prestart")
@click.pass_obj
@_reports_errors
def prestart(settings: Settings) -> None:
    """Run as the OCI prestart hook: read the container state on stdin.

    Exit 0 when every requested accelerator is in place (or the container is
    not an FPGA region container); exit 1 otherwise, and the container does
    not start.

    Example (what CRI-O does):

        fpga-crihook prestart < state.json
    """
    from fpga_crihook.hook import run_prestart  # noqa: PLC0415 (keep --help fast)
    from fpga_crihook.oci import read_state  # noqa: PLC0415

    settings.check()
    run_prestart(read_state(sys.stdin.buffer), settings)


cli.add_command(prestart, "createRuntime")


def main() -> None:
    """Console-script entry point: one line per error, exit status 1, never a traceback."""
    ensure_path_variable(os.environ)
    try:
        status: Any = cli.main(prog_name="fpga-crihook", standalone_mode=False)
    except click.exceptions.Exit as done:
        status = done.exit_code
    except click.ClickException as error:
        sys.stderr.write(f"fpga-crihook: error: {error.format_message()}\n")
        status = EXIT_FAILURE
    except click.Abort:
        status = EXIT_FAILURE
    sys.exit(status if isinstance(status, int) else 0)
