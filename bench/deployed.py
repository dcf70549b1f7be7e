"""The hook as a node runs it: a plain install in a virtual environment of the bench's own.

The development venv (``.venv``) is no place to time the hook: it holds the
project as an editable install, whose finder sits in front of every import,
beside pytest, mypy, ruff and their dependencies, whose metadata pydantic's
plugin loader scans in any program that builds a model. A node has none of
that. So the bench builds ``bench/.venv-deployed``: a venv without pip,
holding the wheel built from the working tree and the runtime dependencies
pip resolves for it, nothing else. It is rebuilt from scratch whenever the
source changes (a SHA-256 of the files the wheel is built from, kept in the
venv), so ``make bench`` always times the code as it is; the reference
programs run on the same interpreter.
"""

import contextlib
import fcntl
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

# What setuptools builds the wheel from (pyproject.toml names the readme, the license file and
# the package).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "fpga_crihook")
STAMP = ".fpga-crihook-source"  # in the venv: the digest of the sources it was built from


class Install(NamedTuple):
    """One install of the hook: where it is, what it holds, and how it was installed."""

    venv: Path
    python_version: str
    source_sha256: str
    distributions: tuple[str, ...]  # "name version", sorted, the hook's own included
    editable: bool

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def hook(self) -> Path:
        return self.venv / "bin" / "fpga-crihook"

    def describe(self, relative_to: Path) -> str:
        """One sentence saying which install this is, for the bench's output."""
        where = self.venv.relative_to(relative_to) if self.venv.is_relative_to(relative_to) else ""
        own = next(item for item in self.distributions if item.startswith("fpga-crihook "))
        others = ", ".join(item for item in self.distributions if item != own)
        kind = "editable" if self.editable else "non-editable"
        return (
            f"{own}, {kind} install in {where or self.venv} (Python {self.python_version}), "
            f"built from the working tree (source sha256 {self.source_sha256[:12]}); "
            f"nothing else installed but: {others}"
        )


def deployed_install(repo: Path, venv: Path) -> Install:
    """The install in *venv* of the hook in *repo*'s working tree, (re)built if it is not
    of the current source. Concurrent callers wait for each other's build."""
    digest = source_digest(repo)
    with _locked(venv.with_name(venv.name + ".lock")):
        stamp = venv / STAMP
        if not stamp.exists() or stamp.read_text().strip() != digest:
            _build(repo, venv, digest)
    return inspect_install(venv, digest)


def source_digest(repo: Path) -> str:
    """SHA-256 over the wheel's source files (paths and contents) and the interpreter."""
    digest = hashlib.sha256(f"{sys.base_prefix} {platform.python_version()}\n".encode())
    for path in _source_files(repo):
        digest.update(f"{path.relative_to(repo)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _source_files(repo: Path) -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        top = repo / name
        found = [top] if top.is_file() else sorted(top.rglob("*"))
        files += [path for path in found if path.is_file() and "__pycache__" not in path.parts]
    return files


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(repo: Path, venv: Path, digest: str) -> None:
    """A fresh venv with the wheel of a copy of the sources (a build in the working tree
    would leave ``build/`` behind, whose stale modules a later wheel would pick up)."""
    print(f"bench: building the deployed install in {venv} ...", file=sys.stderr, flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="fpga-crihook-wheel-") as scratch:
        source = Path(scratch)
        for path in _source_files(repo):
            copy = source / path.relative_to(repo)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        python = venv / "bin" / "python"
        _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(source)])
    (venv / STAMP).write_text(digest + "\n")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(
            f"bench: {' '.join(command)} failed (exit status {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )


def inspect_install(venv: Path, digest: str) -> Install:
    """What *venv* holds, read from its distributions' metadata."""
    (site_packages,) = venv.glob("lib/python*/site-packages")
    distributions, editable = [], False
    for metadata in sorted(site_packages.glob("*.dist-info")):
        fields = dict(
            line.split(": ", 1)
            for line in (metadata / "METADATA").read_text().splitlines()[:10]
            if ": " in line
        )
        distributions.append(f"{fields['Name']} {fields['Version']}")
        direct_url = metadata / "direct_url.json"
        if direct_url.exists():
            editable |= bool(json.loads(direct_url.read_text()).get("dir_info", {}).get("editable"))
    editable |= any(site_packages.glob("__editable__*"))
    config = (venv / "pyvenv.cfg").read_text().splitlines()
    version = next(line.split("=")[1].strip() for line in config if line.startswith("version"))
    return Install(venv, version, digest, tuple(sorted(distributions, key=str.lower)), editable)
