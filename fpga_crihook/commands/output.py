"""What the operator commands print on stdout: text for people, JSON for scripts.

A command's ``--json`` output is a typed value, a dataclass of plain values
(nested dataclasses, tuples, mappings of strings), turned into JSON here and
nowhere else: the shape scripts rely on is its fields, in their order.

Text shows strings read from outside (GBS metadata, hooks.d files, paths,
sysfs) with every character that is not printable escaped: such a string
can neither fail the command (a lone surrogate, as JSON's ``"\\ud800"`` gives,
has no UTF-8 form) nor forge a line of its output. JSON escapes them itself.
"""

import dataclasses
import json
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


def printable(text: str) -> str:
    """*text* with each character that is not printable written as its Python escape
    (``\\n``, ``\\x1b``, ``\\u202e``, ``\\ud800``); printable text, in any script, as it is."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def echo(text: str) -> None:
    """Output for people on stdout: *text*'s lines, each :func:`printable`, in what stdout's
    encoding can say (a character it cannot is escaped too)."""
    lines = "\n".join(printable(line) for line in text.split("\n"))
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    click.echo(lines.encode(encoding, "backslashreplace").decode(encoding))


def echo_json(value: "DataclassInstance") -> None:
    """Output for scripts on stdout: *value* as indented JSON."""
    click.echo(json.dumps(dataclasses.asdict(value), indent=2))


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")
