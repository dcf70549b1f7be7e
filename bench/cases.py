"""Running the cases, and what their samples say: rows of medians and paired differences.

Every case runs once per round, all cases taken in turn in each round (in
the round's own shuffled order) so that machine noise hits them alike;
warm-up rounds are discarded. Each run reports wall time, the child's CPU
time (user + system) and its peak RSS, both from ``wait4``
(``bench/measure.py`` spawns them).
"""

import json
import marshal
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from world import Case

SPAWNER = Path(__file__).resolve().parent / "measure.py"
METRICS = ("wall_ms", "cpu_ms", "rss_mib")
TIMES = METRICS[:2]

Results = dict[str, dict[str, Any]]  # measure.py's: {name: {"samples": [...], "failure": ...}}
Rows = dict[str, dict[str, Any]]


def measure(cases: list[Case], warmup: int, repeats: int, scratch: Path) -> Results:
    """Run the cases through the small spawner process (``bench/measure.py``), from an empty
    working directory (``python -c`` looks for modules there first)."""
    plan = {
        "warmup": warmup,
        "repeats": repeats,
        "stderr": str(scratch / "stderr"),
        "cases": [_planned(case) for case in cases],
    }
    plan_path, results_path = scratch / "plan.marshal", scratch / "results.marshal"
    plan_path.write_bytes(marshal.dumps(plan))
    workdir = scratch / "cwd"
    workdir.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-I", "-S", str(SPAWNER), str(plan_path), str(results_path)],
        check=True,
        cwd=workdir,
    )
    results: Results = marshal.loads(results_path.read_bytes())  # noqa: S302 (ours)
    return results


def _planned(case: Case) -> dict[str, Any]:
    return {
        "name": case.name,
        "argv": case.argv,
        "env": case.env,
        "stdin": str(case.stdin),
        "expect": case.expect,
        "reset": None if case.reset is None else (str(case.reset[0]), case.reset[1]),
    }


def make_rows(cases: list[Case], results: Results) -> Rows:
    """One row per case: its medians, or why it has none."""
    return {case.name: _row(case, results.get(case.name)) for case in cases}


def _row(case: Case, result: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"what": case.what, "program": case.argv[0]}
    if result is None or result["failure"] is not None:
        row["error"] = _failure_words(result["failure"] if result else None)
        return row
    walls, cpus, rss_kib = zip(*result["samples"], strict=True)
    row.update(
        wall_ms=round(statistics.median(walls), 2),
        cpu_ms=round(statistics.median(cpus), 2),
        rss_mib=round(statistics.median(rss_kib) / 1024, 2),
        wall_ms_min=round(min(walls), 2),
        runs=len(walls),
    )
    return row


def _failure_words(failure: tuple[int, str] | None) -> str:
    """What went wrong, in the hook's words when its last line is a JSON error event."""
    if failure is None:
        return "not run"
    exit_code, line = failure
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        event = None
    words = str(event.get("error", line)) if isinstance(event, dict) else line
    return f"exit status {exit_code}: {words[:300] or 'no output'}"


def difference(left: str, right: str, results: Results, rows: Rows) -> dict[str, Any] | None:
    """*left* minus *right*: times as the median of the per-round differences, with its 95 %
    confidence interval; peak RSS as the difference of the medians.

    Both cases ran once in every round: pairing them by round cancels what the
    machine did to that round. On a shared machine single runs still scatter
    by tens of milliseconds, so the interval says how far the median can be
    trusted; more ``--repeats`` narrow it.
    """
    if "error" in rows[left] or "error" in rows[right]:
        return None
    pairs = list(zip(results[left]["samples"], results[right]["samples"], strict=True))
    paired: dict[str, Any] = {}
    for index, metric in enumerate(TIMES):
        values = sorted(a[index] - b[index] for a, b in pairs)
        paired[metric] = round(statistics.median(values), 2)
        paired[f"{metric}_ci95"] = [round(bound, 2) for bound in median_interval(values)]
    paired["rss_mib"] = round(rows[left]["rss_mib"] - rows[right]["rss_mib"], 2)
    return paired


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95 % confidence interval for the median of *values* (sorted).

    The number of values below the true median is binomial(n, 1/2): the
    interval runs from the j-th to the (n+1-j)-th smallest value, with j the
    largest rank whose two tails together hold at most 5 %.
    """
    count = len(values)
    tail, rank = 0.0, 0
    while rank < count // 2:
        tail += math.comb(count, rank) / 2**count
        if 2 * tail > 0.05:
            break
        rank += 1
    if rank == 0:  # too few values for any interval at this level
        return values[0], values[-1]
    return values[rank - 1], values[count - rank]


def table(rows: Rows, first_column: str = "case") -> list[str]:
    """The rows as ``make bench`` prints them: medians of wall, CPU and peak RSS."""
    lines = [f"{first_column:<12} {'wall ms':>8} {'cpu ms':>8} {'RSS MiB':>8}  what"]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"{name:<12} {'ERROR':>8} {'':>8} {'':>8}  {row['what']}: {row['error']}")
        else:
            numbers = f"{row['wall_ms']:8.1f} {row['cpu_ms']:8.1f} {row['rss_mib']:8.1f}"
            lines.append(f"{name:<12} {numbers}  {row['what']}")
    return lines


def interval_text(paired: dict[str, Any], metric: str) -> str:
    """``+1.2 (-0.5..+3.0)``: a paired median and its 95 % interval."""
    low, high = paired[f"{metric}_ci95"]
    return f"{paired[metric]:+.1f} ({low:+.1f}..{high:+.1f})"
