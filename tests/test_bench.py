"""bench/, run small: the hook as deployed, every row measured, every target and growth judged.

The bench's modules are on the test path (pyproject.toml); the runs go through
``bench/run.py`` as ``make bench`` does, one round each, to keep the suite fast.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import import_profile
import pytest
from cases import difference, median_interval
from deployed import source_digest
from helpers import REPO

ROWS = [
    "bare",
    "floor",
    "floor-models",
    "floor-nogc",
    "floor-lean",
    "floor-all",
    "floor-elf",
    "hash-1",
    "skip",
    "skip-metrics",
    "skip-conf",
    "noop",
    "gbs-1",
    "aocx-1",
    "dry-1",
    "dry-small",
]
DEPLOYED = REPO / "bench" / ".venv-deployed"


class Bench(NamedTuple):
    """What one run of bench/run.py wrote to its JSON file and printed."""

    report: dict[str, Any]
    stdout: str


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Bench:
    """The start-up bench, one round, a 1 MiB bitstream, a one-run import profile."""
    return _bench(
        tmp_path_factory.mktemp("bench"), "--size-mib=1", "--repeats=1", "--profile-runs=1"
    )


def _bench(tmp_path: Path, *options: str) -> Bench:
    output = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--warmup=0",
            f"--output={output}",
            *options,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return Bench(json.loads(output.read_text()), result.stdout)


def test_small_benchmark_times_the_deployed_install_and_judges_every_target(
    small_bench: Bench,
) -> None:
    report, stdout = small_bench

    assert list(report["rows"]) == ROWS
    for name, row in report["rows"].items():
        assert "error" not in row, (name, row["error"])
        assert row["runs"] == 1
        assert Path(row["program"]).parent == DEPLOYED / "bin"  # the floors run there too
        assert row["rss_mib"] > 1
    assert report["rows"]["gbs-1"]["rss_mib"] > report["rows"]["bare"]["rss_mib"]
    assert [verdict["status"] in ("PASS", "FAIL") for verdict in report["targets"]] == [True] * 5
    assert report["settings"] == {"repeats": 1, "warmup_rounds": 0, "size_mib": 1}
    lines = stdout.splitlines()
    assert lines[0].startswith("machine: ")
    assert "at the start" in lines[0]
    assert len(report["machine"]["load_before"]) == len(report["machine"]["load_after"]) == 3
    assert lines[1].startswith("hook: fpga-crihook 0.1.0, non-editable install in bench/")
    assert "skip CPU <= floor-models + 10 ms" in stdout
    assert "noop CPU <= floor-models + 5 ms" in stdout


def test_the_dry_run_may_cost_the_hashing_its_provenance_needs_and_10_ms_more(
    small_bench: Bench,
) -> None:
    report, stdout = small_bench

    (dry,) = [verdict for verdict in report["targets"] if verdict["target"].startswith("dry-1 ")]
    hashing = report["differences"]["hash-1 - bare"]["cpu_ms"]
    assert dry["allowance"] == round(10.0 + hashing, 1)
    assert "dry-1 CPU <= dry-small + (hash-1 - bare) + 10 ms" in stdout


def test_deployed_install_holds_the_hook_and_its_runtime_dependencies_only(
    small_bench: Bench,
) -> None:
    install = small_bench.report["install"]
    names = {item.split()[0].lower() for item in install["distributions"]}
    assert install["editable"] is False
    assert install["source_sha256"] == source_digest(REPO)
    assert {"fpga-crihook", "click", "pydantic", "structlog", "jsonschema"} <= names
    assert names.isdisjoint({"pytest", "mypy", "ruff", "hypothesis", "pip", "setuptools"})
    site_packages = next(DEPLOYED.glob("lib/python*/site-packages"))
    assert not (site_packages / "fpga_crihook" / "launch.py").is_symlink()
    assert (site_packages / "fpga_crihook" / "launch.py").read_bytes() == (
        REPO / "fpga_crihook" / "launch.py"
    ).read_bytes()


def test_the_source_digest_follows_every_source_file_and_ignores_bytecode(
    tmp_path: Path,
) -> None:
    for name in ("pyproject.toml", "README.md", "fpga_crihook/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, tmp_path / name)
    before = source_digest(tmp_path)
    (tmp_path / "fpga_crihook" / "__pycache__").mkdir()
    (tmp_path / "fpga_crihook" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")

    unchanged = source_digest(tmp_path)
    (tmp_path / "fpga_crihook" / "schemas").mkdir()
    (tmp_path / "fpga_crihook" / "schemas" / "new.json").write_text("{}")

    assert unchanged == before
    assert source_digest(tmp_path) != before


def test_the_import_profile_of_the_skip_path_shows_its_largest_imports(
    small_bench: Bench,
) -> None:
    stdout = small_bench.stdout

    profile = stdout[stdout.index("import profile of skip") :].splitlines()
    assert "(-X importtime, medians of 1 runs)" in profile[0]
    cumulative = [float(line.split()[0]) for line in profile[2:12]]
    largest = [line.split()[-1] for line in profile[2:12]]
    assert cumulative == sorted(cumulative, reverse=True)
    # Only what holds however noisy one run is: a module's cumulative time includes every
    # import below it, so the CLI (which imports the rest) and oci (which imports pydantic,
    # itself within a few ms of its neighbours) always rank in the ten.
    assert {"fpga_crihook.cli", "fpga_crihook.oci"} <= set(largest)


def test_importtime_lines_parse_into_depth_and_times() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       198 |        198 |   _io",
            "import time:       226 |        685 | _frozen_importlib_external",
            "import time:        40 |        300 |     click._compat",
            "import time:      1376 |      69570 | fpga_crihook.cli",
            '{"event": "port already holds the AFU: skipped"}',
        ]
    )

    entries = import_profile.parse(stderr)

    assert entries == [
        import_profile.ImportTime("_io", 1, 198.0, 198.0),
        import_profile.ImportTime("_frozen_importlib_external", 0, 226.0, 685.0),
        import_profile.ImportTime("click._compat", 2, 40.0, 300.0),
        import_profile.ImportTime("fpga_crihook.cli", 0, 1376.0, 69570.0),
    ]
    assert [entry.module for entry in import_profile.largest(entries, 2)] == [
        "fpga_crihook.cli",
        "_frozen_importlib_external",
    ]


def test_scaling_measures_every_size_and_port_count_and_judges_the_growth(
    tmp_path: Path,
) -> None:
    report, stdout = _bench(tmp_path, "--scaling", "--sizes=1,2", "--repeats=1")

    rows = report["rows"]
    assert sorted(rows) == sorted(
        ["skip-1p", "skip-4p", "skip-16p", "gbs-1", "aocx-1", "gbs-2", "aocx-2"]
    )
    assert all("error" not in row for row in rows.values()), rows
    assert rows["skip-16p"]["what"] == "16 port(s) on 8 card(s), each holding its AFU"
    assert rows["skip-4p"]["what"] == "4 port(s) on 4 card(s), each holding its AFU"
    assert [step["case"] for step in report["growth"]["gbs"]["steps"]] == ["gbs-2"]
    assert [step["work"] for step in report["growth"]["skip"]["steps"]] == [4, 16]
    assert rows["gbs-2"]["rss_mib"] > rows["gbs-1"]["rss_mib"]
    assert [verdict["check"] for verdict in report["checks"]] == [
        "gbs: peak RSS from 1 to 2 MiB grows by <= 1.1 MiB per MiB",
        "aocx: peak RSS from 1 to 2 MiB grows by <= 1.25 MiB per MiB",
        "skip: CPU per added port <= 1 ms",
    ]
    assert report["sha256_ms_per_mib"] > 0
    assert "sha256 of a raw bitstream" in stdout


def test_time_differences_pair_the_runs_of_each_round() -> None:
    # Round 2 was slow for both cases: pairing by round cancels it, medians would not.
    results = {
        "skip": {
            "samples": [(100.0, 90.0, 30_000), (200.0, 190.0, 30_000), (300.0, 290.0, 30_000)]
        },
        "base": {"samples": [(95.0, 88.0, 20_000), (190.0, 181.0, 20_000), (310.0, 300.0, 20_000)]},
    }
    rows = {"skip": {"rss_mib": 29.3}, "base": {"rss_mib": 19.5}}

    paired = difference("skip", "base", results, rows)

    assert paired is not None
    assert (paired["wall_ms"], paired["cpu_ms"], paired["rss_mib"]) == (5.0, 2.0, 9.8)


def test_the_median_interval_holds_the_median_and_widens_with_fewer_runs() -> None:
    many = [float(value) for value in range(101)]  # median 50
    few = [float(value) for value in range(9)]  # median 4

    low, high = median_interval(many)
    assert low < 50 < high
    assert (high - low) / len(many) < 0.25  # about 1.96 * sqrt(n) / n of the ranks
    assert median_interval(few) == (1.0, 7.0)  # ranks 2 and 8 of 9: 96 % coverage


def test_rounds_take_the_cases_in_varied_orders() -> None:
    import measure  # noqa: PLC0415 (bench/measure.py: run as a script, imported only here)

    cases = [f"case{index}" for index in range(14)]

    orders = [measure.shuffled(cases, seed) for seed in range(41)]

    assert all(sorted(order) == sorted(cases) for order in orders)
    assert orders == [measure.shuffled(cases, seed) for seed in range(41)]  # repeatable
    before = [order[order.index("case12") - 1] for order in orders if order[0] != "case12"]
    assert max(before.count(name) for name in set(before)) < len(before) / 3
