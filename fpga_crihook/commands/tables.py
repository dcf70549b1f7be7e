"""Plain-text output for people: aligned columns, nothing else.

Scripts use the commands' ``--json`` output; these tables may change. Each
cell is :func:`~fpga_crihook.commands.output.printable` before it is
measured: a value from a file holds no line break or control character here.
"""

from collections.abc import Sequence

from fpga_crihook.commands.output import printable

_GAP = "  "


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """*rows* under *headers*, each column as wide as its widest cell."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        _GAP.join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *rows)
    ]
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """``name:  value`` lines with the values lined up."""
    pairs = [(name, printable(value)) for name, value in pairs]
    width = max((len(name) for name, _ in pairs), default=0) + 1
    return "\n".join(f"{name + ':':<{width}}{_GAP}{value}".rstrip() for name, value in pairs)
