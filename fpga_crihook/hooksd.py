"""hooks.d files: how CRI-O and podman are told to run the hook.

A hooks.d file names a program (``hook``), when to run it (``when``: every
condition must hold) and at which ``stages``. Format 1.0.0's contract is the
JSON Schema shipped in the package: ``check`` reports where a file breaks it,
in jsonschema's words, and reads a file that keeps it into
:class:`HooksFile` for everything else. Telling whether a file of any
version runs fpga-crihook needs less: :func:`program`.
"""

import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from fpga_crihook import jsondocs
from fpga_crihook.jsondocs import SchemaProblem

VERSION = "1.0.0"
SCHEMA = f"hooks-{VERSION}"


def _tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


# A JSON array of strings, held as a tuple.
Strings = Annotated[tuple[str, ...], BeforeValidator(_tuple)]

# Frozen and strict: a document valid against the schema, whose types are all JSON's.
# Deferred: built on first use, by check only.
_HOOKS_D = ConfigDict(frozen=True, extra="ignore", strict=True, defer_build=True)


class Hook(BaseModel):
    """The program the runtime runs: ``path``, with ``args`` (argv[0] included) and
    ``env``, killed after ``timeout`` seconds."""

    model_config = _HOOKS_D

    path: str
    args: Strings = ()
    env: Strings = ()
    timeout: int | float | None = None  # the schema's integer takes 90.0 too

    @property
    def program(self) -> str:
        """The file name of the executable."""
        return os.path.basename(self.path)


class When(BaseModel):
    """When the runtime runs the hook: only when every condition given holds."""

    model_config = _HOOKS_D

    always: bool | None = None
    annotations: Mapping[str, str] = Field(default_factory=dict)  # key regex: value regex
    commands: Strings = ()  # regexes for the container's process.args[0]
    has_bind_mounts: bool | None = Field(default=None, alias="hasBindMounts")


class HooksFile(BaseModel):
    """A hooks.d file of format 1.0.0."""

    model_config = _HOOKS_D

    version: str
    hook: Hook
    when: When
    stages: Strings


def schema_problems(document: Any) -> list[SchemaProblem]:
    """How *document* breaks the hooks.d 1.0.0 format, in the order of where."""
    return jsondocs.schema_problems(SCHEMA, document)


def parse(document: Any) -> HooksFile:
    """The hooks.d file in *document*, which :func:`schema_problems` finds nothing wrong with."""
    return HooksFile.model_validate(document)


def program(document: Any) -> str | None:
    """The file name of the program a hooks.d document of any version and shape runs;
    ``None`` when it is no hooks.d file (no ``version``, no ``hook`` object)."""
    if not isinstance(document, dict) or "version" not in document:
        return None
    hook = document.get("hook")
    if not isinstance(hook, dict):
        return None
    return os.path.basename(str(hook.get("path", "")))
