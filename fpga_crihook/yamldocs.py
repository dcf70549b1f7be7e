"""YAML documents from outside (CDI specs), read with a bounded amount of work.

YAML's aliases let a few hundred bytes stand for hundreds of millions of
values (anchors nested nine deep, each referring to the last nine times).
CDI specs need none, so a document with an anchor or an alias is refused.
The parser's events are counted before anything is built: a document of
more values and keys than :data:`jsondocs.MAX_NODES`, or nested deeper than
:data:`jsondocs.MAX_DEPTH`, is refused after reading no more than that many,
and the document is built only once it is known to be small. libyaml's
parser is used when PyYAML has it (as its wheels do); PyYAML's own, in
Python, is about twenty times slower.
"""

from collections.abc import Iterable
from typing import Any

from fpga_crihook.jsondocs import MAX_DEPTH, MAX_NODES, JsonProblem, require_bounded


def decode(raw: bytes) -> Any:
    """The YAML document in *raw*, or :class:`JsonProblem` (said as of a JSON document)."""
    import yaml  # noqa: PLC0415 (only YAML specs pay for it)

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _require_plain(yaml.parse(raw, Loader=loader))
        document = _load(raw, loader)
    except yaml.YAMLError as error:
        raise JsonProblem(f"is not valid YAML: {' '.join(str(error).split())}") from None
    require_bounded(document)
    return document


def _load(raw: bytes, loader: Any) -> Any:
    import yaml  # noqa: PLC0415

    try:
        return yaml.load(raw, Loader=loader)  # noqa: S506 (a safe loader)
    except ValueError:  # int() refusing a very long integer
        raise JsonProblem("holds a number too long to read") from None


def _require_plain(events: Iterable[Any]) -> None:
    """Read the parser's events, refusing anchors, aliases, too many nodes, too deep nests."""
    import yaml  # noqa: PLC0415

    nodes = depth = 0
    for event in events:
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise JsonProblem(
                "uses YAML anchors or aliases (& and *), which fpga-crihook does not read: "
                "a few of them can stand for millions of values"
            )
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
        if nodes > MAX_NODES:
            raise JsonProblem(f"holds more than {MAX_NODES} values and keys")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise JsonProblem(f"is nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
