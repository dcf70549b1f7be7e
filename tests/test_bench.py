"""bench/run.py, run small: every row measured, every target judged, the table printed."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

ROWS = [
    "bare",
    "floor",
    "floor-models",
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
        "skip-metrics - skip",
        "skip-conf - skip",
        "noop - floor-models",
        "dry-1 - dry-small",
    ]
    assert [verdict["status"] in ("PASS", "FAIL") for verdict in report["targets"]] == [True] * 5
    assert report["settings"] == {"repeats": 3, "warmup_rounds": 0, "size_mib": 1}
    assert result.stdout.startswith("machine: ")
    assert f"Python {sys.version.split()[0]}" in result.stdout.splitlines()[0]
    assert "skip wall <= floor-models + 25 ms" in result.stdout
