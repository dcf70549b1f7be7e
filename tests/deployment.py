"""Helpers for the tests of deployments/: payloads, the node installer, the image recipe.

A stand-in payload (two sh programs and an absolute symlink) is enough for
what the installer does with files; a real one, built by build-payload.sh
from Debian's own Python, is for what the hook does once installed.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from engine import unavailable
from helpers import REPO

DEPLOYMENTS = REPO / "deployments"
KUBERNETES = DEPLOYMENTS / "kubernetes"
INSTALLER = DEPLOYMENTS / "install-on-node.sh"
BUILD_PAYLOAD = DEPLOYMENTS / "build-payload.sh"
CONTAINERFILE = DEPLOYMENTS / "Containerfile"
HOOK_JSON = REPO / "hooks.d" / "intel-fpga-crihook.json"
# Debian's own Python: its standard library holds sitecustomize.py -> /etc/python3.X/...
DEBIAN_PYTHON = Path("/usr/bin/python3")
# A symlink in the stand-in payload that leads out of it: a copy must keep it as it is.
ABSOLUTE_LINK_TARGET = "/usr/bin/python3.11"


def documents(path: Path) -> list[Any]:
    """The YAML documents in *path*."""
    with path.open(encoding="utf-8") as stream:
        return [document for document in yaml.safe_load_all(stream) if document is not None]


def make_payload(directory: Path, release: str) -> Path:
    """A stand-in payload: both programs (saying *release*), a file, an absolute symlink."""
    (directory / "bin").mkdir(parents=True)
    program = directory / "bin" / "fpga-crihook"
    program.write_text(f"#!/bin/sh\necho {release}\n", encoding="utf-8")
    program.chmod(0o755)
    drop_in = directory / "bin" / "intel-fpga-crihook"
    drop_in.write_text(f"#!/bin/sh\necho drop-in {release}\n", encoding="utf-8")
    drop_in.chmod(0o755)
    (directory / "bin" / "python").symlink_to(ABSOLUTE_LINK_TARGET)
    # The installer reads CRI-O's config with the payload's Python: here, the tests' own.
    python3 = directory / "bin" / "python3"
    python3.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n', encoding="utf-8")
    python3.chmod(0o755)
    (directory / "lib").mkdir()
    (directory / "lib" / f"{release}.txt").write_text(release, encoding="utf-8")
    return directory


def release_names(releases: Path) -> dict[str, str]:
    """Release directory name -> the name its stand-in payload was made with."""
    return {path.name: next((path / "lib").glob("*.txt")).stem for path in releases.iterdir()}


def tree(directory: Path) -> dict[str, str]:
    """Relative path -> content (or symlink target) of everything under *directory*."""
    found = {}
    for path in directory.rglob("*"):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_file():
            found[name] = path.read_text(encoding="utf-8")
    return found


def run_installer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``install-on-node.sh *args`` with PATH and exactly *env* besides."""
    return subprocess.run(
        ["sh", str(INSTALLER), *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _require_payload_builder() -> None:
    """What build-payload.sh needs here: Debian's Python with pip, ldd and patchelf."""
    missing = [name for name in ("ldd", "patchelf") if shutil.which(name) is None]
    if not DEBIAN_PYTHON.exists():
        missing.append(str(DEBIAN_PYTHON))
    elif subprocess.run(
        [DEBIAN_PYTHON, "-m", "pip", "--version"], check=False, capture_output=True
    ).returncode:
        missing.append("pip for " + str(DEBIAN_PYTHON))
    if missing:
        unavailable(
            f"building a payload needs {', '.join(missing)}: apt-get install -y "
            "python3-pip patchelf"
        )


def build_payload(workdir: Path) -> Path:
    """A payload built by build-payload.sh from Debian's Python, then moved away from where
    it was built, so that anything in it naming the build's path would fail."""
    _require_payload_builder()
    project = workdir / "project"  # a copy: the build writes build/ into its source
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, project / name)
    shutil.copytree(
        REPO / "fpga_crihook",
        project / "fpga_crihook",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    built = workdir / "built"
    result = subprocess.run(
        ["sh", str(BUILD_PAYLOAD), str(project), str(built)],
        env={"PATH": os.environ["PATH"], "PYTHON": str(DEBIAN_PYTHON)},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    moved = workdir / "moved"
    built.rename(moved)
    return moved


# --- deployments/Containerfile ---------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for line in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    found = []
    for text in logical:
        keyword, arguments = text.split(None, 1)
        found.append((keyword.upper(), arguments))
    return found


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the image's last stage, its FROM first."""
    found = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(found) if keyword == "FROM")
    return found[last_from:]


def copies(stage: list[tuple[str, str]]) -> list[list[str]]:
    """The arguments of each COPY in *stage*."""
    return [shlex.split(arguments) for keyword, arguments in stage if keyword == "COPY"]


def image_command() -> list[str]:
    """What the image runs when started with no command: ENTRYPOINT, then CMD."""
    given = {
        keyword: json.loads(arguments)
        for keyword, arguments in final_stage()
        if keyword in ("ENTRYPOINT", "CMD")
    }
    return [*given.get("ENTRYPOINT", []), *given.get("CMD", [])]
