"""The OCI state (stdin) and runtime config (``<bundle>/config.json``).

Only the few fields the hook needs are modelled; everything else in either
document is ignored, never rejected. Error messages name the field and never
echo the input: config.json carries the container's environment, which may
hold secrets.
"""

import enum
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fpga_crihook import jsondocs
from fpga_crihook.errors import InputError

MODE_ANNOTATION = "com.intel.fpga.mode"
REGION_MODES = frozenset({"fpga.intel.com/region", "intel.com/fpga-region"})  # current, legacy
# Who the container is, by engine: CRI-O under the kubelet copies the kubelet's labels into
# the annotations; containerd's CRI plugin writes its own keys. Each event field takes the
# first of its keys that the state carries.
POD_IDENTITY_ANNOTATIONS = {
    "pod_namespace": ("io.kubernetes.pod.namespace", "io.kubernetes.cri.sandbox-namespace"),
    "pod_name": ("io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"),
    "container_name": ("io.kubernetes.container.name", "io.kubernetes.cri.container-name"),
}

MAX_STATE_BYTES = 1 << 20
MAX_CONFIG_BYTES = 16 << 20

MANUAL_CONTAINER_ID = "manual"  # the made-up state of a run by hand on a sample config.json

# Strict: no coercion ("511" is not a major number). Fields the hook does not
# model are ignored, never rejected. Deferred: a model's validator is built on
# its first use, so a container without the FPGA annotation builds only State's.
_OUTSIDE_DOCUMENT = ConfigDict(frozen=True, extra="ignore", strict=True, defer_build=True)


class Trigger(enum.Enum):
    """What made the runtime run the hook for a container: it decides what the hook asks of it."""

    # A hooks.d file (or a spec naming ``prestart``): only containers with the region annotation.
    ANNOTATION = "annotation"
    # Intel's device plugin writes the CDI spec that runs its drop-in only in region mode, and
    # containerd passes no annotation on: being run from that spec means region mode.
    INTEL_CDI = "intel-cdi"
    # Our own spec (``cdi generate``): the container asked for a port by its CDI name, and one
    # that names no accelerator gets the port as it is.
    OWN_CDI = "cdi"


class State(BaseModel):
    """The container state the runtime writes to the hook's stdin."""

    model_config = _OUTSIDE_DOCUMENT

    bundle: str
    id: str = ""
    annotations: Mapping[str, str] = Field(default_factory=dict)

    @property
    def is_fpga_region_container(self) -> bool:
        """True when the device plugin gave this container ports in region mode."""
        return self.annotations.get(MODE_ANNOTATION) in REGION_MODES

    @property
    def pod_identity(self) -> dict[str, str | None]:
        """``pod_namespace``, ``pod_name`` and ``container_name`` from whichever engine's
        annotations the state carries; ``None`` where no engine's annotation names one."""
        return {
            field: next((self.annotations[key] for key in keys if key in self.annotations), None)
            for field, keys in POD_IDENTITY_ANNOTATIONS.items()
        }


def leaves_alone(state: State, trigger: Trigger) -> bool:
    """True (and a debug event says so) when the hook has nothing to do for the container,
    whatever its config: a hooks.d file's run for a container without the region annotation.

    The one place that decides: the hook's command asks before it imports the
    rest of the hook, and :func:`~fpga_crihook.hook.run_prestart` for its
    other callers.
    """
    if trigger is not Trigger.ANNOTATION or state.is_fpga_region_container:
        return False
    log = structlog.get_logger()
    log.debug("not an FPGA region container: nothing to do", container_id=state.id)
    return True


class Device(BaseModel):
    """One ``linux.devices`` entry."""

    model_config = _OUTSIDE_DOCUMENT

    path: str
    type: str = ""
    major: int | None = None
    minor: int | None = None


class Process(BaseModel):
    """The config's ``process`` object: only its environment."""

    model_config = _OUTSIDE_DOCUMENT

    env: list[str] | None = None


class Linux(BaseModel):
    """The config's ``linux`` object: only its device nodes."""

    model_config = _OUTSIDE_DOCUMENT

    devices: list[Device] | None = None


class RuntimeConfig(BaseModel):
    """What the hook reads of the OCI runtime config (``config.json``)."""

    model_config = _OUTSIDE_DOCUMENT

    process: Process | None = None
    linux: Linux | None = None

    @property
    def env(self) -> list[str]:
        """``process.env``, empty when absent."""
        return (self.process.env if self.process else None) or []

    @property
    def devices(self) -> list[Device]:
        """``linux.devices``, empty when absent."""
        return (self.linux.devices if self.linux else None) or []


_Model = TypeVar("_Model", bound=BaseModel)

# pydantic names a nested model that is not an object by its class: say it as for any object.
_MESSAGES = {"model_type": "Input should be a valid dictionary"}


def read_state(stream: BinaryIO) -> State:
    """Read and parse the state JSON from the runtime (the hook's stdin)."""
    try:
        raw = _read_bounded(stream, MAX_STATE_BYTES, "the container state on stdin")
    except OSError as error:
        raise InputError(f"cannot read the container state on stdin: {error.strerror}") from None
    return parse_state(raw)


def parse_state(raw: bytes) -> State:
    """Parse the state JSON; the bundle must be an existing directory."""
    source = "the container state on stdin"
    state = _validate(State, _load_json(raw, source), source)
    if not state.bundle.startswith("/"):
        raise InputError(f"{source}: field 'bundle': must be an absolute path")
    if not _is_directory(state.bundle):
        raise InputError(
            f"the container state's field 'bundle': {state.bundle!r} is not an existing directory"
        )
    return state


def manual_state(config_file: Path, annotations: Mapping[str, str] | None = None) -> State:
    """The state of a run by hand on *config_file*, for which no runtime wrote one.

    Its bundle is the file's directory, its annotations *annotations* or, by
    default, the region annotation the device plugin sets.
    """
    if annotations is None:
        annotations = {MODE_ANNOTATION: "fpga.intel.com/region"}
    bundle = os.path.dirname(os.path.abspath(config_file))
    return State(id=MANUAL_CONTAINER_ID, bundle=bundle, annotations=annotations)


def load_config(bundle: Path) -> RuntimeConfig:
    """Read and parse ``<bundle>/config.json``."""
    return read_config(bundle / "config.json")


def read_config(path: Path) -> RuntimeConfig:
    """Read and parse an OCI runtime config: a bundle's config.json, or a sample of one."""
    try:
        # Never blocks: a FIFO in place of the file fails instead of hanging the hook.
        raw = jsondocs.read_file(path, MAX_CONFIG_BYTES)
    except jsondocs.JsonProblem as problem:
        raise InputError(f"{path} {problem}") from None
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: the bundle has no OCI runtime config") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    return parse_config(raw, str(path))


def parse_config(raw: bytes, source: str = "config.json") -> RuntimeConfig:
    """Parse an OCI runtime config, keeping only ``process.env`` and ``linux.devices``."""
    return _validate(RuntimeConfig, _load_json(raw, source), source)


def parse_device(document: Any, source: str = "a linux.devices entry") -> Device:
    """Parse one ``linux.devices`` entry (as the runtime writes it)."""
    return _validate(Device, document, source)


def _is_directory(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:  # missing, or not reachable (EACCES, ELOOP, ...): not a usable bundle
        return False


def _read_bounded(stream: BinaryIO, limit: int, source: str) -> bytes:
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise InputError(f"{source} is larger than {limit} bytes")
    return raw


def _load_json(raw: bytes, source: str) -> Any:
    try:
        return jsondocs.decode(raw)
    except jsondocs.JsonProblem as problem:
        raise InputError(f"{source} {problem}") from None


def _validate(model: type[_Model], document: Any, source: str) -> _Model:
    if not isinstance(document, dict):
        raise InputError(f"{source} must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = _MESSAGES.get(first["type"], first["msg"])
        raise InputError(f"{source}: field {field!r}: {message}") from None
