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
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from fpga_crihook import jsondocs
from fpga_crihook.commands.devices import scan
from fpga_crihook.devices import find_port_by_name, port_from_sysfs_dir
from fpga_crihook.errors import DeviceError, HookError
from fpga_crihook.nodeconfig import DEFAULT_PATH, ENV_VAR, ConfigFile, Origin, Setting
from fpga_crihook.settings import Settings

CDI_VERSION = "0.5.0"
KIND = "intel.com/fpga"
INTEL_KIND = "intel.cdi.k8s.io/fpga"  # what Intel's FPGA device plugin writes
FPGA_KINDS = (KIND, INTEL_KIND)
DROP_IN = "intel-fpga-crihook"  # the program Intel's spec names
OUR_PROGRAMS = ("fpga-crihook", DROP_IN)
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
PROGRAM = "fpga-crihook"
CONTAINER_DEVFS = Path("/dev")
SPEC_SUFFIXES = (".json", ".yaml")  # the only files CDI runtimes read from their directories
# Either one set puts the hook's events on stderr, which runc pastes into a failed pod's
# error (DESIGN.md section 6): they concern this command's own output, not the hook's.
NOT_FOR_THE_HOOK = ("log-level", "log-format")


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


class SpecHook(NamedTuple):
    """A hook in a CDI spec, and where: the spec-wide edits or one device's."""

    where: str
    hook: dict[str, Any]

    @property
    def program(self) -> str:
        """The file name of the hook's executable."""
        return os.path.basename(str(self.hook.get("path", "")))


class Generated(NamedTuple):
    """The spec, and notes for the operator about ports left out of it."""

    spec: dict[str, Any]
    notes: list[str]


def generate(
    settings: Settings, hook_path: Path, in_force: list[Setting], config: ConfigFile | None
) -> Generated:
    """The CDI spec for this node's ports, validated; raises when there is no port."""
    nodes, notes = _port_nodes(settings)
    if not nodes:
        raise DeviceError(
            f"no FPGA ports under {settings.sysfs}: a CDI spec needs at least one device"
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    spec = {
        "cdiVersion": CDI_VERSION,
        "kind": KIND,
        "devices": [
            *({"name": node.name, "containerEdits": _edits([node])} for node in nodes),
            {"name": ALL_PORTS, "containerEdits": _edits(nodes)},
        ],
        "containerEdits": {
            "hooks": [
                _hook(
                    hook_path, hook_env(in_force, config), hook_timeout(settings.deadline.seconds)
                )
            ]
        },
    }
    _require_valid(spec)
    return Generated(spec, notes)


def hook_env(in_force: list[Setting], config: ConfigFile | None) -> list[str]:
    """The env that gives the hook the settings this command was given.

    Settings from the command line or the environment that differ from the
    defaults (but the log level and format), and the config file when it is
    not the default one.
    """
    env = []
    if config is not None and os.path.abspath(config.path) != str(DEFAULT_PATH):
        env.append(f"{ENV_VAR}={os.path.abspath(config.path)}")
    for setting in in_force:
        given = setting.origin in (Origin.COMMAND_LINE, Origin.ENVIRONMENT)
        given = given and setting.key not in NOT_FOR_THE_HOOK
        absolute = setting  # the runtime runs the hook in another working directory
        if isinstance(setting.value, Path):
            absolute = setting._replace(value=Path(os.path.abspath(setting.value)))
        entry = absolute.as_env()
        if given and not setting.is_default and entry is not None:
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


def render(spec: dict[str, Any], fmt: Format) -> str:
    """The spec as text."""
    if fmt is Format.YAML:
        import yaml  # noqa: PLC0415 (only this command writes YAML)

        text: str = yaml.safe_dump(spec, sort_keys=False, default_flow_style=False)
        return text
    return json.dumps(spec, indent=2) + "\n"


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


def _edits(nodes: list[PortNode]) -> dict[str, Any]:
    return {"deviceNodes": [_device_node(node) for node in nodes]}


def _device_node(node: PortNode) -> dict[str, Any]:
    path = CONTAINER_DEVFS / node.name
    entry: dict[str, Any] = {"path": str(path)}
    if node.host_path != path:
        entry["hostPath"] = str(node.host_path)
    entry.update(type="c", major=node.major, minor=node.minor, permissions=PERMISSIONS)
    return entry


def _hook(path: Path, env: list[str], timeout: int) -> dict[str, Any]:
    hook: dict[str, Any] = {"hookName": HOOK_NAME, "path": str(path), "args": list(HOOK_ARGS)}
    if env:
        hook["env"] = env
    hook["timeout"] = timeout
    return hook


def _require_valid(spec: dict[str, Any]) -> None:
    """A spec that breaks the format would be dropped whole by the runtime: never write one."""
    errors = sorted(
        jsondocs.schema_validator(f"cdi-{CDI_VERSION}").iter_errors(spec),
        key=lambda error: list(error.absolute_path),
    )
    if errors:
        where = "/".join(str(part) for part in errors[0].absolute_path) or "top level"
        raise HookError(
            f"the generated CDI spec breaks the CDI {CDI_VERSION} format at {where}: "
            f"{errors[0].message} (please report this as a bug of fpga-crihook)"
        )


# Reading specs (for check) --------------------------------------------------------------------


def read_document(path: Path) -> Any:
    """The document in a CDI spec file (YAML by its name, else JSON); raises JsonProblem,
    also for a document too large or too deep to check quickly."""
    if path.suffix not in (".yaml", ".yml"):
        return jsondocs.read_bounded(path)
    from fpga_crihook import yamldocs  # noqa: PLC0415

    return yamldocs.decode(jsondocs.read_file(path))


def is_spec(document: Any) -> bool:
    """True for a CDI spec (rather than a hooks.d file)."""
    return isinstance(document, dict) and "cdiVersion" in document


def spec_hooks(document: dict[str, Any]) -> list[SpecHook]:
    """Every hook of the spec, read defensively (any cdiVersion, any shape)."""
    found = [SpecHook("containerEdits", hook) for hook in _hooks_in(document.get("containerEdits"))]
    for device in _objects(document.get("devices")):
        where = f"device {device.get('name')!r}"
        found.extend(SpecHook(where, hook) for hook in _hooks_in(device.get("containerEdits")))
    return found


def spec_device_nodes(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(device name, ``deviceNodes`` entry) of every device of the spec."""
    return [
        (str(device.get("name")), node)
        for device in _objects(document.get("devices"))
        for node in _objects(_mapping(device.get("containerEdits")).get("deviceNodes"))
    ]


def our_hooks(document: dict[str, Any]) -> list[SpecHook]:
    """The spec's hooks that run fpga-crihook: every hook of an FPGA kind, else by program."""
    hooks = spec_hooks(document)
    if document.get("kind") in FPGA_KINDS:
        return hooks
    return [hook for hook in hooks if hook.program in OUR_PROGRAMS]


def _hooks_in(edits: Any) -> list[dict[str, Any]]:
    return _objects(_mapping(edits).get("hooks"))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
