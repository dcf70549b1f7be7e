"""JSON documents from outside the hook: decoding them, and the JSON Schemas shipped here.

One set of failure reasons for every document (state, config.json, GBS
metadata, hooks.d files); each caller puts the reason into its own error
class and names the document.
"""

import functools
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


class JsonProblem(ValueError):
    """Why bytes are not a JSON document, as the end of a sentence ("is not UTF-8 ...")."""


def decode(raw: bytes) -> Any:
    """The JSON value in *raw* (UTF-8), or :class:`JsonProblem`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonProblem(f"is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text)
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
