"""The OCI state (stdin) and runtime config (``<bundle>/config.json``).

Only the few fields the hook needs are modelled; everything else in either
document is ignored, never rejected. Error messages name the field and never
echo the input: config.json carries the container's environment, which may
hold secrets.
"""

import dataclasses
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as schema

from fpga_crihook import jsondocs
from fpga_crihook.errors import InputError

MODE_ANNOTATION = "com.intel.fpga.mode"
REGION_MODES = frozenset({"fpga.intel.com/region", "intel.com/fpga-region"})  # current, legacy
POD_NAMESPACE_ANNOTATION = "io.kubernetes.pod.namespace"
POD_NAME_ANNOTATION = "io.kubernetes.pod.name"

MAX_STATE_BYTES = 1 << 20
MAX_CONFIG_BYTES = 16 << 20


@dataclasses.dataclass(frozen=True)
class State:
    """The container state the runtime writes to the hook's stdin."""

    bundle: str
    id: str = ""
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def is_fpga_region_container(self) -> bool:
        """True when the device plugin gave this container ports in region mode."""
        return self.annotations.get(MODE_ANNOTATION) in REGION_MODES


@dataclasses.dataclass(frozen=True)
class Device:
    """One ``linux.devices`` entry."""

    path: str
    type: str = ""
    major: int | None = None
    minor: int | None = None


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """What the hook reads of the OCI runtime config (each empty when absent)."""

    env: list[str] = dataclasses.field(default_factory=list)  # process.env
    devices: list[Device] = dataclasses.field(default_factory=list)  # linux.devices


# The documents are validated by pydantic's core with the schemas below rather
# than by pydantic.BaseModel classes: importing and building models would cost
# every container start tens of milliseconds (``make bench``, rows skip and noop).
# Strict: no coercion ("511" is not a major number); unknown fields are ignored.


def _optional(inner: schema.CoreSchema, default: Any = None) -> schema.TypedDictField:
    return schema.typed_dict_field(
        schema.with_default_schema(inner, default=default), required=False
    )


def _object(**fields: schema.TypedDictField) -> schema.TypedDictSchema:
    return schema.typed_dict_schema(fields, extra_behavior="ignore", strict=True)


def _list(item: schema.CoreSchema) -> schema.NullableSchema:
    return schema.nullable_schema(schema.list_schema(item, strict=True))


_TEXT = schema.str_schema(strict=True)
_NUMBER = schema.nullable_schema(schema.int_schema(strict=True))
_STATE = SchemaValidator(
    _object(
        id=_optional(_TEXT, ""),
        bundle=schema.typed_dict_field(_TEXT),
        annotations=schema.typed_dict_field(
            schema.with_default_schema(
                schema.dict_schema(_TEXT, _TEXT, strict=True), default_factory=dict
            ),
            required=False,
        ),
    )
)
_DEVICE = _object(
    path=schema.typed_dict_field(_TEXT),
    type=_optional(_TEXT, ""),
    major=_optional(_NUMBER),
    minor=_optional(_NUMBER),
)
_CONFIG = SchemaValidator(
    _object(
        process=_optional(schema.nullable_schema(_object(env=_optional(_list(_TEXT))))),
        linux=_optional(schema.nullable_schema(_object(devices=_optional(_list(_DEVICE))))),
    )
)
_DEVICE_ENTRY = SchemaValidator(_DEVICE)


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
    state = State(**_validate(_STATE, _load_json(raw, source), source))
    if not state.bundle.startswith("/"):
        raise InputError(f"{source}: field 'bundle': must be an absolute path")
    if not _is_directory(state.bundle):
        raise InputError(
            f"the container state's field 'bundle': {state.bundle!r} is not an existing directory"
        )
    return state


def load_config(bundle: Path) -> RuntimeConfig:
    """Read and parse ``<bundle>/config.json``."""
    path = bundle / "config.json"
    try:
        # O_NONBLOCK: a FIFO in place of the file must fail, not hang the hook.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK), "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise InputError(f"{path} is not a regular file")
            raw = _read_bounded(stream, MAX_CONFIG_BYTES, str(path))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: the bundle has no OCI runtime config") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    return parse_config(raw, str(path))


def parse_config(raw: bytes, source: str = "config.json") -> RuntimeConfig:
    """Parse an OCI runtime config, keeping only ``process.env`` and ``linux.devices``."""
    document = _validate(_CONFIG, _load_json(raw, source), source)
    process = document["process"] or {}
    linux = document["linux"] or {}
    return RuntimeConfig(
        env=process.get("env") or [],
        devices=[Device(**device) for device in linux.get("devices") or ()],
    )


def parse_device(document: Any, source: str = "a linux.devices entry") -> Device:
    """Parse one ``linux.devices`` entry (as the runtime writes it)."""
    return Device(**_validate(_DEVICE_ENTRY, document, source))


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


def _validate(validator: SchemaValidator, document: Any, source: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise InputError(f"{source} must be a JSON object")
    try:
        valid: dict[str, Any] = validator.validate_python(document)
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InputError(f"{source}: field {field!r}: {first['msg']}") from None
    return valid
