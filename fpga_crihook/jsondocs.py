"""JSON documents from outside the hook: decoding them, and the JSON Schemas shipped here.

One set of failure reasons for every document (state, config.json, GBS
metadata, hooks.d files); each caller puts the reason into its own error
class and names the document.
"""

import errno
import functools
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from fpga_crihook import files

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


MAX_FILE_BYTES = 1 << 20  # an operator's document file: hooks.d files, CDI specs
# What a hooks.d file or a CDI spec may hold, keys counted: a spec for 64 ports holds about
# 2,000. The bound keeps the work of checking one (schema, regexes) well under a second.
MAX_NODES = 10_000
MAX_DEPTH = 64


class JsonProblem(ValueError):
    """Why bytes are not a JSON document, as the end of a sentence ("is not UTF-8 ...")."""


class SchemaProblem(NamedTuple):
    """One way a document breaks a JSON Schema, in jsonschema's words."""

    where: str  # the path to the value, "hook/timeout", or "top level"
    message: str  # "'1.0.0' was expected"


def read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a document file of at most *limit* bytes.

    Only a regular file is read, and it is opened without blocking
    (:func:`fpga_crihook.files.open_regular`), following a link (these are
    the operator's or the runtime's files, found where they put them): a
    FIFO (or a device) in its place is :class:`JsonProblem`, never a hang.
    Errors opening or reading it, a directory in its place included, are
    :class:`OSError`.
    """
    try:
        return files.read_regular(path, limit, follow_links=True)
    except files.NotRegularFile as refused:
        if refused.is_directory:  # said as the system says it, as for any file read
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)) from None
        raise JsonProblem("is not a regular file") from None
    except files.TooLarge as problem:
        raise JsonProblem(str(problem)) from None


def decode(raw: bytes) -> Any:
    """The JSON value in *raw* (UTF-8), or :class:`JsonProblem`.

    ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259), though
    Python's decoder takes them, and neither is a number too large for a
    float: each is refused, so no document reaches a check holding one.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonProblem(f"is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonProblem:
        raise
    except json.JSONDecodeError as error:
        raise JsonProblem(
            f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise JsonProblem("is not valid JSON: nested too deeply") from None
    except ValueError:  # an integer literal longer than Python converts
        raise JsonProblem(
            f"holds a number of more than {sys.get_int_max_str_digits()} digits"
        ) from None


def read_bounded(path: Path) -> Any:
    """The JSON document in an operator's file (:func:`read_file`), refused with
    :class:`JsonProblem` when :func:`require_bounded` refuses it."""
    document = decode(read_file(path))
    require_bounded(document)
    return document


def require_bounded(document: Any) -> None:
    """Refuse a document of more than MAX_NODES values and keys, nested more than
    MAX_DEPTH levels, or holding a value JSON has no type for (a YAML date, say)."""
    count, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = _children(value)
        count += 1 + (len(value) if isinstance(value, dict) else 0)
        if count > MAX_NODES:
            raise JsonProblem(f"holds more than {MAX_NODES} values and keys")
        if children and depth >= MAX_DEPTH:
            raise JsonProblem(f"is nested more than {MAX_DEPTH} levels deep")
        pending.extend((child, depth + 1) for child in children)


def _children(value: Any) -> list[Any]:
    """What a JSON value holds; :class:`JsonProblem` for what no JSON value can be."""
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise JsonProblem("has a key that is not a string")
        return list(value.values())
    if isinstance(value, list):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise JsonProblem("holds NaN or Infinity, which JSON has no number for")
    if not isinstance(value, str | int | float | bool | None):
        raise JsonProblem(f"holds a {type(value).__name__}, which JSON has no type for")
    return []


def _refuse_constant(name: str) -> Any:
    raise JsonProblem(f"is not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonProblem(f"is not valid JSON: the number {text[:40]} is too large")
    return number


@functools.cache
def schema_validator(name: str) -> "Validator":
    """A validator for ``schemas/<name>.schema.json`` (jsonschema is imported only here)."""
    from importlib import resources  # noqa: PLC0415 (it imports tempfile, shutil, bz2, lzma)

    from jsonschema import Draft202012Validator  # noqa: PLC0415

    schema = json.loads(
        resources.files("fpga_crihook")
        .joinpath(f"schemas/{name}.schema.json")
        .read_text(encoding="utf-8")
    )
    return Draft202012Validator(schema)


def schema_problems(name: str, document: Any) -> list[SchemaProblem]:
    """Every way *document* breaks ``schemas/<name>.schema.json``, in the order of where."""
    errors = sorted(
        schema_validator(name).iter_errors(document), key=lambda error: list(error.absolute_path)
    )
    return [
        SchemaProblem(
            "/".join(str(part) for part in error.absolute_path) or "top level", error.message
        )
        for error in errors
    ]
