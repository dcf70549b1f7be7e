"""``prestart`` (and ``createRuntime``): the hook itself, as the runtime runs it.

Every container start on the node runs this, and most containers are not
FPGA containers: such a run reads the state, finds the container left alone
(:func:`fpga_crihook.oci.leaves_alone`) and ends before importing the rest of
the hook (``tests/test_import_cost.py``, ``make bench``'s noop row).
"""

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fpga_crihook.deadline import Deadline
from fpga_crihook.errors import ExitStatus, SettingsError
from fpga_crihook.inforce import SettingsInForce

if TYPE_CHECKING:
    from fpga_crihook.hook import Progress
    from fpga_crihook.oci import State


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


@click.command("prestart", epilog=_exit_status_table())
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
    from fpga_crihook.oci import Trigger, leaves_alone  # noqa: PLC0415 (keep --help fast)

    settings = given.settings
    settings.check()
    state = _container_state(config_file, annotations)
    hook_trigger = Trigger.ANNOTATION if trigger is None else Trigger(trigger)
    if leaves_alone(state, hook_trigger):
        return  # before importing the rest: most containers on a node are not ours
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
