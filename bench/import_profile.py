"""Where a start's time goes, module by module: ``python -X importtime`` on one case.

Most of a hook start is imports. The profile runs the case a few times with
``PYTHONPROFILEIMPORTTIME=1`` (the same as ``-X importtime``, on the command
the node runs), takes each module's median self and cumulative time, and
shows the largest cumulative ones: a regression shows which import brought
it. The numbers include the profiler's own overhead, so they are read
against each other, not against the rows of the table.
"""

import statistics
import subprocess
from typing import NamedTuple

from world import Case

_PREFIX = "import time:"


class ImportTime(NamedTuple):
    """One module's import: how deep in the import tree, its own and its cumulative time."""

    module: str
    depth: int  # 0: imported by code that is not itself being imported (the script, main())
    self_us: float
    cumulative_us: float


def profile(case: Case, runs: int) -> list[ImportTime]:
    """Each module *case* imports, with its median times over *runs* runs (after one
    discarded run that warms the page cache)."""
    samples: dict[str, list[ImportTime]] = {}
    for _ in range(runs + 1):
        for entry in parse(_run(case)):
            samples.setdefault(entry.module, []).append(entry)
    return [
        ImportTime(
            module,
            found[0].depth,
            statistics.median(entry.self_us for entry in found[1:] or found),
            statistics.median(entry.cumulative_us for entry in found[1:] or found),
        )
        for module, found in samples.items()
    ]


def _run(case: Case) -> str:
    with case.stdin.open("rb") as stdin:
        result = subprocess.run(
            case.argv,
            env={**case.env, "PYTHONPROFILEIMPORTTIME": "1"},
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    if result.returncode != 0:
        raise SystemExit(f"bench: {case.name} failed under -X importtime:\n{result.stderr[-2000:]}")
    return result.stderr


def parse(stderr: str) -> list[ImportTime]:
    """The ``import time:`` lines of *stderr*, in the order Python printed them (a module
    after the modules it imported)."""
    entries = []
    for line in stderr.splitlines():
        if not line.startswith(_PREFIX) or line.endswith("imported package"):
            continue
        own, cumulative, name = line.removeprefix(_PREFIX).split("|", 2)
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        entries.append(ImportTime(name.strip(), depth, float(own), float(cumulative)))
    return entries


def largest(entries: list[ImportTime], count: int = 10) -> list[ImportTime]:
    """The *count* imports with the largest cumulative times, largest first."""
    return sorted(entries, key=lambda entry: entry.cumulative_us, reverse=True)[:count]


def render(entries: list[ImportTime], runs: int, case: str) -> list[str]:
    """The profile as ``make bench`` prints it: the ten largest cumulative imports, and the
    total of the imports at the top of the tree."""
    total = sum(entry.cumulative_us for entry in entries if entry.depth == 0)
    lines = [
        f"import profile of {case} (-X importtime, medians of {runs} runs): "
        f"{total / 1000:.1f} ms in imports; the ten largest cumulative:",
        f"  {'cumul. ms':>9} {'self ms':>8}  depth  module",
    ]
    lines += [
        f"  {entry.cumulative_us / 1000:9.1f} {entry.self_us / 1000:8.2f}  {entry.depth:>5}  "
        f"{entry.module}"
        for entry in largest(entries)
    ]
    return lines
