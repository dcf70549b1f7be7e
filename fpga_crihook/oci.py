"""The OCI state (stdin) and runtime config (``<bundle>/config.json``).

Only the few fields the hook needs are modelled; everything else in either
document is ignored, never rejected. Error messages name the field and never
echo the input: config.json carries the container's environment, which may
hold secrets.
"""

import json
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pydantic

from fpga_crihook.errors import InputError

MODE_ANNOTATION = "com.intel.fpga.mode"
REGION_MODES = frozenset({"fpga.intel.com/region", "intel.com/fpga-region"})  # current, legacy
POD_NAMESPACE_ANNOTATION = "io.kubernetes.pod.namespace"
POD_NAME_ANNOTATION = "io.kubernetes.pod.name"

MAX_STATE_BYTES = 1 << 20
MAX_CONFIG_BYTES = 16 << 20

_ModelT = TypeVar("_ModelT", bound=pydantic.BaseModel)

_FROZEN = pydantic.ConfigDict(frozen=True, extra="ignore", strict=True)


class State(pydantic.BaseModel):
    """The container state the runtime writes to the hook's stdin."""

    model_config = _FROZEN

    id: str = ""
    bundle: str
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("bundle")
    @classmethod
    def _bundle_is_absolute(cls, bundle: str) -> str:
        if not bundle.startswith("/"):
            raise ValueError("must be an absolute path")
        return bundle

    @property
    def is_fpga_region_container(self) -> bool:
        """True when the device plugin gave this container ports in region mode."""
        return self.annotations.get(MODE_ANNOTATION) in REGION_MODES


class Device(pydantic.BaseModel):
    """One ``linux.devices`` entry."""

    model_config = _FROZEN

    path: str
    type: str = ""
    major: int | None = None
    minor: int | None = None


class _Process(pydantic.BaseModel):
    model_config = _FROZEN

    env: list[str] | None = None


class _Linux(pydantic.BaseModel):
    model_config = _FROZEN

    devices: list[Device] | None = None


class RuntimeConfig(pydantic.BaseModel):
    """What the hook reads of the OCI runtime config."""

    model_config = _FROZEN

    process: _Process | None = None
    linux: _Linux | None = None

    @property
    def env(self) -> list[str]:
        """``process.env``, empty when absent."""
        return list(self.process.env or ()) if self.process else []

    @property
    def devices(self) -> list[Device]:
        """``linux.devices``, empty when absent."""
        return list(self.linux.devices or ()) if self.linux else []


def read_state(stream: BinaryIO) -> State:
    """Read and parse the state JSON from the runtime (the hook's stdin)."""
    return parse_state(_read_bounded(stream, MAX_STATE_BYTES, "the container state on stdin"))


def parse_state(raw: bytes) -> State:
    """Parse the state JSON; the bundle must be an existing directory."""
    state = _validate(
        State, _load_json(raw, "the container state on stdin"), "the container state on stdin"
    )
    if not Path(state.bundle).is_dir():
        raise InputError(
            f"the container state's field 'bundle': {state.bundle!r} is not an existing directory"
        )
    return state


def load_config(bundle: Path) -> RuntimeConfig:
    """Read and parse ``<bundle>/config.json``."""
    path = bundle / "config.json"
    try:
        with path.open("rb") as stream:
            raw = _read_bounded(stream, MAX_CONFIG_BYTES, str(path))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: the bundle has no OCI runtime config") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    return parse_config(raw, str(path))


def parse_config(raw: bytes, source: str = "config.json") -> RuntimeConfig:
    """Parse an OCI runtime config, keeping only ``process.env`` and ``linux.devices``."""
    return _validate(RuntimeConfig, _load_json(raw, source), source)


def _read_bounded(stream: BinaryIO, limit: int, source: str) -> bytes:
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise InputError(f"{source} is larger than {limit} bytes")
    return raw


def _load_json(raw: bytes, source: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{source} is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise InputError(f"{source} is not valid JSON: nested too deeply") from None


def _validate(model: type[_ModelT], document: Any, source: str) -> _ModelT:
    if not isinstance(document, dict):
        raise InputError(f"{source} must be a JSON object")
    try:
        return model.model_validate(document)
    except pydantic.ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(f"{source}: field {field!r}: {first['msg']}") from None
