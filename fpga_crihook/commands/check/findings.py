"""A finding of ``check``: one line of its report, ``ok:``, ``warning:`` or ``error:``.

A finding names what it is about and stays one line whatever a document
holds: text quoted from a document is cut at :data:`MAX_QUOTED` characters,
and a document that breaks its format gets at most :data:`MAX_SCHEMA_ERRORS`
lines for that, then one saying how many more.
"""

import enum
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from fpga_crihook.jsondocs import SchemaProblem

MAX_SCHEMA_ERRORS = 20  # findings for one file's format: more would bury the rest
MAX_QUOTED = 300  # characters of a document's text quoted in a finding


class Level(enum.StrEnum):
    """How a finding counts: only errors make ``check`` exit 1."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


class Finding(NamedTuple):
    """One line of the report."""

    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding is an error."""
    return any(finding.level is Level.ERROR for finding in findings)


def schema_errors(problems: list[SchemaProblem], name: str) -> Iterator[str]:
    """The first few ways a document breaks the format *name*, each in one line of bounded
    length."""
    for where, message in problems[:MAX_SCHEMA_ERRORS]:
        yield f"breaks the {name} format at {shortened(where)}: {shortened(message)}"
    if len(problems) > MAX_SCHEMA_ERRORS:
        yield f"breaks the {name} format in {len(problems) - MAX_SCHEMA_ERRORS} more places"


def shortened(text: str) -> str:
    """*text* (a message quoting a document's value, which may be huge) cut to a line."""
    return text if len(text) <= MAX_QUOTED else f"{text[: MAX_QUOTED - 3]}..."
