"""What the operator commands print on stdout: text for people, JSON for scripts.

A command's ``--json`` output is turned into JSON here and nowhere else.
"""

import json
from typing import Any

import click

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


def echo(text: str) -> None:
    """Output for people on stdout."""
    click.echo(text)


def echo_json(value: dict[str, Any]) -> None:
    """Output for scripts on stdout: *value* as indented JSON."""
    click.echo(json.dumps(value, indent=2))
