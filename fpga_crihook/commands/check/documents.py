"""Each file ``check`` looks at, read once, and what it holds.

Every part of the report that looks at a file (its own findings, whether it
runs the hook when the runtimes' directories are searched, a hook that would
run twice, which engine reads it) looks at the one value read here, so a
file replaced while ``check`` runs is reported as it was read. Reading is
bounded (:func:`fpga_crihook.cdispec.read_document`): at most 1 MiB, only a
regular file, never a blocking open, no YAML aliases. A file is a CDI spec
when its document has a ``cdiVersion``, whatever its name; any other
document is read as a hooks.d file, though only a JSON one can be one.
"""

from pathlib import Path
from typing import NamedTuple

from fpga_crihook import cdispec, hooksd, jsondocs
from fpga_crihook.commands import cdi


class Unreadable(NamedTuple):
    """A file that could not be read, or holds no document ``check`` reads."""

    path: Path
    message: str  # the finding: "PATH: cannot read it: ...", "PATH is not valid JSON: ..."


class SpecFile(NamedTuple):
    """A CDI spec (a document with a ``cdiVersion``), of any version and shape."""

    path: Path
    spec: cdispec.Spec
    value: object  # the document as read, for the format's JSON Schema


class NotASpec(NamedTuple):
    """A document with no ``cdiVersion``: a hooks.d file, if it is one."""

    path: Path
    value: object  # the document as read, for the hooks.d format's JSON Schema


Document = Unreadable | SpecFile | NotASpec


def read(path: Path) -> Document:
    """The document in *path* (YAML by its name, else JSON), or why there is none."""
    try:
        value = cdispec.read_document(path)
    except OSError as error:
        return Unreadable(path, f"{path}: cannot read it: {error.strerror}")
    except jsondocs.JsonProblem as problem:
        return Unreadable(path, f"{path} {problem}")
    if cdispec.is_spec(value):
        return SpecFile(path, cdispec.parse(value), value)
    return NotASpec(path, value)


def runner(document: Document) -> cdispec.Spec | str | None:
    """What in *document* runs fpga-crihook: the CDI spec (one of whose hooks does), or the
    program a hooks.d file runs; None for neither, and for a file that could not be read
    (its own findings say why)."""
    if isinstance(document, SpecFile):
        return document.spec if cdi.our_hooks(document.spec) else None
    if isinstance(document, NotASpec):
        program = hooksd.program(document.value)
        return program if program in cdi.OUR_PROGRAMS else None
    return None


def runs_the_hook(document: Document) -> bool:
    """True when something in *document* runs fpga-crihook (:func:`runner`)."""
    return runner(document) is not None
