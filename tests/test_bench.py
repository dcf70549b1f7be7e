"""bench/run.py, run small: every row measured, every target judged, the table printed."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from conftest import REPO

ROWS = [
    "bare",
    "floor",
    "floor-models",
    "floor-nogc",
    "floor-all",
    "floor-elf",
    "skip",
    "skip-metrics",
    "skip-conf",
    "noop",
    "gbs-1",
    "aocx-1",
    "dry-1",
    "dry-small",
]


def test_small_benchmark_measures_every_row_and_judges_every_target(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--size-mib=1",
            "--repeats=3",
            "--warmup=0",
            f"--output={output}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    assert list(report["rows"]) == ROWS
    for name, row in report["rows"].items():
        assert "error" not in row, (name, row["error"])
        assert row["runs"] == 3
        assert 0 < row["wall_ms_min"] <= row["wall_ms"]
        assert row["rss_mib"] > 1
    assert report["rows"]["gbs-1"]["rss_mib"] > report["rows"]["bare"]["rss_mib"]
    assert list(report["differences"]) == [
        "skip - floor-models",
        "skip - floor-nogc",
        "skip-metrics - skip",
        "skip-conf - skip",
        "noop - floor-models",
        "noop - floor-nogc",
        "floor-models - floor-nogc",
        "dry-1 - dry-small",
    ]
    assert [verdict["status"] in ("PASS", "FAIL") for verdict in report["targets"]] == [True] * 5
    assert report["settings"] == {"repeats": 3, "warmup_rounds": 0, "size_mib": 1}
    assert result.stdout.startswith("machine: ")
    assert f"Python {sys.version.split()[0]}" in result.stdout.splitlines()[0]
    assert "skip wall <= floor-models + 25 ms" in result.stdout


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_differences_pair_the_runs_of_each_round() -> None:
    bench = _bench_module()
    # Round 2 was slow for both cases: pairing by round cancels it, medians would not.
    results = {
        "skip": {
            "samples": [(100.0, 90.0, 30_000), (200.0, 190.0, 30_000), (300.0, 290.0, 30_000)]
        },
        "base": {"samples": [(95.0, 88.0, 20_000), (190.0, 181.0, 20_000), (310.0, 300.0, 20_000)]},
    }
    rows = {"skip": {"rss_mib": 29.3}, "base": {"rss_mib": 19.5}}

    difference = bench._difference("skip", "base", results, rows)

    assert (difference["wall_ms"], difference["cpu_ms"], difference["rss_mib"]) == (5.0, 2.0, 9.8)


def test_the_median_interval_holds_the_median_and_widens_with_fewer_runs() -> None:
    bench = _bench_module()
    many = [float(value) for value in range(101)]  # median 50
    few = [float(value) for value in range(9)]  # median 4

    low, high = bench.median_interval(many)
    assert low < 50 < high
    assert (high - low) / len(many) < 0.25  # about 1.96 * sqrt(n) / n of the ranks
    assert bench.median_interval(few) == (1.0, 7.0)  # ranks 2 and 8 of 9: 96 % coverage


def test_rounds_take_the_cases_in_varied_orders() -> None:
    spec = importlib.util.spec_from_file_location("bench_measure", REPO / "bench" / "measure.py")
    assert spec is not None
    assert spec.loader is not None
    measure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measure)
    cases = [f"case{index}" for index in range(14)]

    orders = [measure.shuffled(cases, seed) for seed in range(41)]

    assert all(sorted(order) == sorted(cases) for order in orders)
    assert orders == [measure.shuffled(cases, seed) for seed in range(41)]  # repeatable
    before = [order[order.index("case12") - 1] for order in orders if order[0] != "case12"]
    assert max(before.count(name) for name in set(before)) < len(before) / 3
