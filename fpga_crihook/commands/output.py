"""What the operator commands print on stdout: text for people, JSON for scripts.

A command's ``--json`` output is a typed value, a dataclass of plain values
(nested dataclasses, tuples, mappings of strings), turned into JSON here and
nowhere else: the shape scripts rely on is its fields, in their order.
"""

import dataclasses
import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


def echo(text: str) -> None:
    """Output for people on stdout."""
    click.echo(text)


def echo_json(value: "DataclassInstance") -> None:
    """Output for scripts on stdout: *value* as indented JSON."""
    click.echo(json.dumps(dataclasses.asdict(value), indent=2))
