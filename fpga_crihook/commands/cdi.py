"""``cdi generate``: a CDI spec whose devices are this node's FPGA ports and whose hook is us.

For nodes without Intel's device plugin (a workstation with podman, a
containerd node): ``--device intel.com/fpga=dfl-port.0`` then gives the
container the port and runs ``fpga-crihook createRuntime --cdi``, which
programs what the container's ``FPGA_REGION_N`` / ``FPGA_AFU_N`` ask for.

The ports come from the same sysfs scan as ``devices``. The hook sits in the
spec-wide ``containerEdits``, which a runtime applies once however many of
the spec's devices a container asks for, so the hook runs once per container.
Its ``env`` carries the settings given on the command line or in the
environment that differ from the defaults (not the log level and format,
which would put the hook's events on stderr), and names a config file other
than the default one, so a spec made for a custom store or sysfs root works
as generated; settings from the config file stay there, read by the hook at
each start. The spec is checked against the shipped JSON Schema of
``cdiVersion`` 0.5.0 (the first with ``hostPath``, and what Intel's plugin
writes; podman 4.1+, containerd 1.7+ and CRI-O read it) before it is written.
"""

import enum
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import click

from fpga_crihook import cdispec
from fpga_crihook.commands import output as text_output
from fpga_crihook.commands.devices import scan
from fpga_crihook.devices import find_port_by_name, port_from_sysfs_dir
from fpga_crihook.errors import DeviceError, HookError
from fpga_crihook.inforce import GIVEN, SettingsInForce
from fpga_crihook.settings import ASKING_FOR_EVENTS, CONFIG_FILE, Settings

PROGRAM = "fpga-crihook"
DROP_IN = "intel-fpga-crihook"  # the program Intel's spec names
OUR_PROGRAMS = (PROGRAM, DROP_IN)
CDI_ARGUMENT = "--cdi"
ALL_PORTS = "all"
HOOK_NAME = "createRuntime"
HOOK_ARGS = ("fpga-crihook", "createRuntime", CDI_ARGUMENT)
# The runtime kills a hook at its timeout, so it comes after the hook's deadline with room
# for what no deadline bounds: a partial reconfiguration begun just before the deadline, its
# verification and the error report. 10 s, as between the shipped deadline (80 s) and the
# shipped hooks.d timeout (90 s).
HOOK_TIMEOUT_MARGIN = 10
PERMISSIONS = "rw"  # the container uses the port; it never creates device nodes
CONTAINER_DEVFS = Path("/dev")
SPEC_SUFFIXES = (".json", ".yaml")  # the only files CDI runtimes read from their directories
# Either one set puts the hook's events on stderr, which runc pastes into a failed pod's
# error (docs/design.md#output): they concern this command's own output, not the hook's.
NOT_FOR_THE_HOOK = tuple(setting.key for setting in ASKING_FOR_EVENTS)


class Format(enum.StrEnum):
    """How the spec is written: CDI runtimes read both."""

    JSON = "json"
    YAML = "yaml"


class PortNode(NamedTuple):
    """One port's device node as a CDI ``deviceNodes`` entry needs it."""

    name: str
    host_path: Path
    major: int
    minor: int


class Generated(NamedTuple):
    """The spec, and notes for the operator about ports left out of it."""

    spec: cdispec.Spec
    notes: list[str]


def generate(settings: Settings, hook_path: Path, in_force: SettingsInForce) -> Generated:
    """The CDI spec for this node's ports, validated; raises when there is no port."""
    nodes, notes = _port_nodes(settings)
    if not nodes:
        raise DeviceError(
            f"no FPGA ports under {settings.sysfs}: a CDI spec needs at least one device"
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    hook = _hook(hook_path, hook_env(in_force), hook_timeout(settings.deadline.seconds))
    spec = cdispec.Spec(
        cdiVersion=cdispec.CDI_VERSION,
        kind=cdispec.KIND,
        devices=(
            *(cdispec.Device(name=node.name, containerEdits=_edits([node])) for node in nodes),
            cdispec.Device(name=ALL_PORTS, containerEdits=_edits(nodes)),
        ),
        containerEdits=cdispec.ContainerEdits(hooks=(hook,)),
    )
    _require_valid(spec)
    return Generated(spec, notes)


def hook_env(in_force: SettingsInForce) -> list[str]:
    """The env that gives the hook the settings this command was given.

    Settings from the command line or the environment that differ from the
    defaults (but the log level and format), and the config file when it is
    not the default one.
    """
    env, config = [], in_force.config_file
    if os.path.abspath(config.path) != str(CONFIG_FILE.default):
        env.append(f"{CONFIG_FILE.env_var}={os.path.abspath(config.path)}")
    for setting in in_force.entries:
        if setting.origin not in GIVEN or setting.key in NOT_FOR_THE_HOOK or setting.is_default:
            continue
        value = setting.value  # a path made absolute: the runtime runs the hook elsewhere
        absolute = Path(os.path.abspath(value)) if isinstance(value, Path) else value
        entry = setting._replace(value=absolute).as_env()
        if entry is not None:
            env.append(entry)
    return env


def hook_timeout(deadline: float) -> int:
    """The ``timeout`` (whole seconds) of a hook whose run has *deadline* seconds."""
    return math.ceil(deadline) + HOOK_TIMEOUT_MARGIN


def installed_hook(explicit: Path | None) -> Path:
    """The ``fpga-crihook`` program a runtime should run: absolute, executable."""
    if explicit is not None:
        if not _is_program(str(explicit)):
            raise HookError(f"--hook-path {explicit} is not an executable file")
        return Path(os.path.abspath(explicit))
    # Beside the program run: a venv's script, or the payload's launcher by the path it was
    # run through (its interpreter runs from the release directory behind the installer's
    # link, which a later install removes). Else beside the interpreter (python -m).
    beside = [Path(sys.executable).parent / PROGRAM]
    if _is_program(sys.argv[0]):
        beside.insert(0, Path(sys.argv[0]).parent / PROGRAM)
    for candidate in (*map(str, beside), shutil.which(PROGRAM)):
        if candidate is not None and _is_program(candidate):
            return Path(os.path.abspath(candidate))
    raise HookError(
        f"cannot find the installed {PROGRAM} (beside {beside[0].parent} or on PATH): "
        "name it with --hook-path"
    )


def _is_program(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def output_format(requested: str | None, output: Path | None) -> Format:
    """The format asked for, else the one the output file's name says (JSON by default)."""
    by_name = Format.YAML if output is not None and output.suffix == ".yaml" else Format.JSON
    if requested is None:
        return by_name
    chosen = Format(requested)
    if output is not None and output.suffix in SPEC_SUFFIXES and chosen is not by_name:
        raise HookError(
            f"--format {chosen} does not fit the name {output}: use a {chosen} file name "
            f"(CDI runtimes read *.json and *.yaml)"
        )
    return chosen


def render(spec: cdispec.Spec, fmt: Format) -> str:
    """The spec as text."""
    return spec.as_yaml() if fmt is Format.YAML else spec.as_json()


def output_notes(output: Path) -> list[str]:
    """What the operator should know about where the spec goes."""
    if output.suffix not in SPEC_SUFFIXES:
        return [
            f"note: CDI runtimes read only *.json and *.yaml files: {output.name} "
            "is not one of them"
        ]
    return []


def write_atomically(text: str, output: Path) -> None:
    """Write *text* to *output* in one rename: a runtime never reads half a spec."""
    try:
        _replace(text, output)
    except OSError as error:
        raise HookError(f"cannot write {error.filename or output}: {error.strerror}") from None


def _replace(text: str, output: Path) -> None:
    output.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    # The temporary name ends in .tmp, which CDI runtimes do not read.
    fd, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fchmod(stream.fileno(), 0o644)
            os.fsync(stream.fileno())
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise


def _port_nodes(settings: Settings) -> tuple[list[PortNode], list[str]]:
    nodes, notes = [], []
    for card in scan(settings):
        for port in card.ports:
            try:
                nodes.append(_port_node(port.name, settings))
            except DeviceError as error:
                notes.append(f"note: {port.name} left out: {error}")
    return nodes, notes


def _port_node(name: str, settings: Settings) -> PortNode:
    sysfs_dir = find_port_by_name(name, settings)
    if sysfs_dir is None:
        raise DeviceError(f"no sysfs directory for {name} under {settings.sysfs}")
    port = port_from_sysfs_dir(sysfs_dir, settings)
    numbers = port.read_dev(settings.busy_limit)
    major, separator, minor = numbers.partition(":")
    if not (separator and major.isdecimal() and minor.isdecimal()):
        raise DeviceError(f"{sysfs_dir / 'dev'} holds {numbers!r}, not MAJOR:MINOR")
    host_path = Path(os.path.abspath(port.device_node))
    return PortNode(port.name, host_path, int(major), int(minor))


def _edits(nodes: list[PortNode]) -> cdispec.ContainerEdits:
    return cdispec.ContainerEdits(deviceNodes=tuple(_device_node(node) for node in nodes))


def _device_node(node: PortNode) -> cdispec.DeviceNode:
    path = CONTAINER_DEVFS / node.name
    return cdispec.DeviceNode(
        path=str(path),
        hostPath=None if node.host_path == path else str(node.host_path),
        type="c",
        major=node.major,
        minor=node.minor,
        permissions=PERMISSIONS,
    )


def _hook(path: Path, env: list[str], timeout: int) -> cdispec.Hook:
    return cdispec.Hook(
        hookName=HOOK_NAME, path=str(path), args=HOOK_ARGS, env=tuple(env), timeout=timeout
    )


def _require_valid(spec: cdispec.Spec) -> None:
    """A spec that breaks the format would be dropped whole by the runtime: never write one."""
    problems = spec.schema_problems()
    if problems:
        raise HookError(
            f"the generated CDI spec breaks the CDI {cdispec.CDI_VERSION} format at "
            f"{problems[0].where}: {problems[0].message} (please report this as a bug of "
            "fpga-crihook)"
        )


def our_hooks(spec: cdispec.Spec) -> list[cdispec.SpecHook]:
    """The spec's hooks that run fpga-crihook: every hook of an FPGA kind, else by program."""
    hooks = spec.hooks()
    if spec.kind in cdispec.FPGA_KINDS:
        return hooks
    return [hook for hook in hooks if hook.hook.program in OUR_PROGRAMS]


@click.group("cdi")
def cdi() -> None:
    """Container Device Interface (CDI) specs: how containerd, CRI-O and podman run the hook
    for a container that asks for an FPGA device by name."""


@cdi.command("generate")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the spec to this file, atomically (default: stdout), "
    "e.g. /etc/cdi/intel.com-fpga.json.",
)
@click.option(
    "--format",
    "spec_format",
    type=click.Choice([spec_format.value for spec_format in Format]),
    help="json or yaml (default: what the --output name ends with, else json).",
)
@click.option(
    "--hook-path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The fpga-crihook the runtime runs (default: this installation's).",
)
@click.pass_obj
def cdi_generate(
    given: SettingsInForce, output: Path | None, spec_format: str | None, hook_path: Path | None
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
    chosen = output_format(spec_format, output)
    spec, notes = generate(given.settings, installed_hook(hook_path), given)
    text = render(spec, chosen)
    for note in notes + (output_notes(output) if output is not None else []):
        click.echo(note, err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    write_atomically(text, output)
    written = f"wrote {output}: kind {spec.kind}, devices {', '.join(spec.device_names)}"
    text_output.echo(text_output.printable(written))
