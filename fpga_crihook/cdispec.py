"""CDI specs: the documents CDI runtimes read from /etc/cdi and /var/run/cdi.

What fpga-crihook reads and writes of a spec is modelled: its ``cdiVersion``
and ``kind``, its devices by name, and the ``containerEdits`` (the spec's own
and each device's) with their ``deviceNodes`` and ``hooks``. Everything else
is ignored.

``cdi generate`` writes the 0.5.0 format (the first with ``hostPath``, and
what Intel's plugin writes; podman 4.1+, containerd 1.7+ and CRI-O read it),
checked against the JSON Schema shipped in the package before it is
written. ``check`` reads specs of any version for the hooks that run
fpga-crihook, so reading never fails on a spec's shape: a list that is no
list reads as empty, an entry that is no object is skipped, and a value a
finding quotes (a version, a kind, a name, a stage, a path, a timeout) is the
JSON scalar as written (a YAML ``name: 0`` is the number 0), or ``None`` when
it is missing or no scalar. The schema, where it applies, says the rest.
"""

import json
import os
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from fpga_crihook import jsondocs
from fpga_crihook.jsondocs import SchemaProblem

CDI_VERSION = "0.5.0"
SCHEMA = f"cdi-{CDI_VERSION}"
KIND = "intel.com/fpga"  # what cdi generate writes
INTEL_KIND = "intel.cdi.k8s.io/fpga"  # what Intel's FPGA device plugin writes
FPGA_KINDS = (KIND, INTEL_KIND)
YAML_SUFFIXES = (".yaml", ".yml")


def _scalar(value: object) -> object:
    return value if value is None or isinstance(value, str | int | float | bool) else None


def _texts(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()


def _objects(value: object) -> object:
    """The objects of a list (a tuple, when the model is built in code); none for no list."""
    if isinstance(value, list | tuple):
        return tuple(item for item in value if isinstance(item, dict | BaseModel))
    return ()


def _object(value: object) -> object:
    return value if isinstance(value, dict | BaseModel) else {}


# A JSON scalar as written; None when missing, or for a list or an object.
Scalar = Annotated[str | int | float | bool | None, BeforeValidator(_scalar)]
# A list of strings; any other item read as its text (as a finding quotes it).
Texts = Annotated[tuple[str, ...], BeforeValidator(_texts)]

_Part = TypeVar("_Part", bound=BaseModel)
# The objects of a list, each read into a part of the spec.
_Objects = Annotated[tuple[_Part, ...], BeforeValidator(_objects)]

# Frozen and strict (no coercion: a number stays a number), ignoring what is not modelled.
# Deferred: built on first use, by check and cdi generate only.
_SPEC_PART = ConfigDict(frozen=True, extra="ignore", strict=True, defer_build=True)


class Hook(BaseModel):
    """A hook the runtime runs at ``hookName``: ``path``, with ``args`` (argv[0] included)
    and ``env``, killed after ``timeout`` seconds."""

    model_config = _SPEC_PART

    hook_name: Scalar = Field(default=None, alias="hookName")
    path: Scalar = None
    args: Texts = ()
    env: Texts = ()
    timeout: Scalar = None

    @property
    def program(self) -> str:
        """The file name of the hook's executable ("" when the spec names none)."""
        return "" if self.path is None else os.path.basename(str(self.path))


class DeviceNode(BaseModel):
    """A device node the runtime makes in the container at ``path``, of ``hostPath``'s."""

    model_config = _SPEC_PART

    path: Scalar = None
    host_path: Scalar = Field(default=None, alias="hostPath")
    type: Scalar = None
    major: Scalar = None
    minor: Scalar = None
    permissions: Scalar = None

    @property
    def on_the_host(self) -> str:
        """The node's path on the host: ``hostPath``, else ``path``."""
        return str(self.host_path or self.path)


class ContainerEdits(BaseModel):
    """What the runtime does to a container given a device (or any of the spec's devices)."""

    model_config = _SPEC_PART

    device_nodes: _Objects[DeviceNode] = Field(default=(), alias="deviceNodes")
    hooks: _Objects[Hook] = ()


def _no_edits() -> ContainerEdits:
    return ContainerEdits()


_Edits = Annotated[ContainerEdits, BeforeValidator(_object)]


class Device(BaseModel):
    """A device a container asks for as ``KIND=NAME``, and its edits."""

    model_config = _SPEC_PART

    name: Scalar = None
    container_edits: _Edits = Field(default_factory=_no_edits, alias="containerEdits")


class SpecHook(NamedTuple):
    """A hook of a spec, and where: the spec-wide edits or one device's."""

    where: str  # "containerEdits", or "device 'dfl-port.0'"
    hook: Hook


class Spec(BaseModel):
    """A CDI spec: its devices, and the edits for a container given any of them."""

    model_config = _SPEC_PART

    cdi_version: Scalar = Field(default=None, alias="cdiVersion")
    kind: Scalar = None
    devices: _Objects[Device] = ()
    container_edits: _Edits = Field(default_factory=_no_edits, alias="containerEdits")

    @property
    def device_names(self) -> tuple[str, ...]:
        """The names of the spec's devices, as a runtime's ``--device KIND=NAME`` takes them."""
        return tuple(str(device.name) for device in self.devices)

    def hooks(self) -> list[SpecHook]:
        """Every hook of the spec: the spec-wide ones first, then each device's."""
        found = [SpecHook("containerEdits", hook) for hook in self.container_edits.hooks]
        for device in self.devices:
            where = f"device {device.name!r}"
            found.extend(SpecHook(where, hook) for hook in device.container_edits.hooks)
        return found

    def device_nodes(self) -> list[tuple[str, DeviceNode]]:
        """(device name, device node) for every device node of every device."""
        return [
            (str(device.name), node)
            for device in self.devices
            for node in device.container_edits.device_nodes
        ]

    def as_json(self) -> str:
        """The spec as ``cdi generate`` writes it in JSON."""
        return json.dumps(self._document(), indent=2) + "\n"

    def as_yaml(self) -> str:
        """The spec as ``cdi generate`` writes it in YAML."""
        import yaml  # noqa: PLC0415 (only YAML specs pay for it)

        text: str = yaml.safe_dump(self._document(), sort_keys=False, default_flow_style=False)
        return text

    def schema_problems(self) -> list[SchemaProblem]:
        """How the spec, as written, breaks the CDI 0.5.0 format (none for a spec we made)."""
        return jsondocs.schema_problems(SCHEMA, self._document())

    def _document(self) -> dict[str, Any]:
        """The JSON document: keys in the order declared, nothing left at its default."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def read_document(path: Path) -> Any:
    """The document in a CDI spec file (YAML by its name, else JSON); raises
    :class:`~fpga_crihook.jsondocs.JsonProblem`, also for a document too large
    or too deep to check quickly, and ``OSError``."""
    if path.suffix not in YAML_SUFFIXES:
        return jsondocs.read_bounded(path)
    from fpga_crihook import yamldocs  # noqa: PLC0415

    return yamldocs.decode(jsondocs.read_file(path))


def is_spec(document: Any) -> bool:
    """True for a CDI spec (rather than a hooks.d file): an object with a ``cdiVersion``."""
    return isinstance(document, dict) and "cdiVersion" in document


def parse(document: Any) -> Spec:
    """The spec in *document* (:func:`is_spec`), of any ``cdiVersion`` and any shape."""
    return Spec.model_validate(document)


def schema_problems(document: Any) -> list[SchemaProblem]:
    """How *document* breaks the CDI 0.5.0 format, in the order of where."""
    return jsondocs.schema_problems(SCHEMA, document)
