"""``check``: which directories the engines on this node read, and the hook's files none reads.

An engine is on the node when its config is (:mod:`fpga_crihook.engineconfig`):
CRI-O reads hooks.d files and CDI specs; containerd reads CDI specs only,
and only with CDI on. A hooks.d file outside CRI-O's ``hooks_dir``, or a CDI
spec outside every reading engine's spec directories, is a hook that never
runs: an error, as is containerd with CDI off. With no engine config on the
node there is nothing to say here.
"""

import os
from collections.abc import Iterator
from pathlib import Path

from fpga_crihook import engineconfig
from fpga_crihook.commands import cdi
from fpga_crihook.commands.check import HOOKS_DIRS, Finding, Level
from fpga_crihook.engineconfig import ContainerdConfig, CrioConfig, Listed


def hooks_dirs_to_search(crio: CrioConfig | None) -> list[Path]:
    """The runtimes' usual hooks.d directories and CRI-O's own, each once."""
    return _unique([*HOOKS_DIRS, *(crio.hooks_dir.directories if crio else ())])


def cdi_dirs_to_search(crio: CrioConfig | None, containerd: ContainerdConfig | None) -> list[Path]:
    """CDI's usual spec directories and those the engines' configs name, each once."""
    return _unique(
        [
            *engineconfig.DEFAULT_CDI_SPEC_DIRS,
            *(crio.cdi_spec_dirs.directories if crio else ()),
            *(containerd.cdi_spec_dirs.directories if containerd else ()),
        ]
    )


def engine_findings(
    crio: CrioConfig | None, containerd: ContainerdConfig | None, files: list[Path]
) -> list[Finding]:
    """What each engine reads, its config's problems, and each of *files* (hooks.d files and
    CDI specs that run the hook) that sits where no engine on the node looks."""
    findings: list[Finding] = []
    if crio is not None:
        findings += _crio_findings(crio)
    if containerd is not None:
        findings += _containerd_findings(containerd)
    readers = _cdi_readers(crio, containerd)
    for path in files:
        if _is_cdi_spec(path):
            findings += _spec_place_findings(path, readers)
        elif crio is not None:
            findings += _hooks_file_place_findings(path, crio)
        elif containerd is not None:
            findings.append(
                Finding(
                    Level.WARNING,
                    f"{path}: containerd reads no hooks.d files and there is no CRI-O config "
                    "on this node: only podman would run this file",
                )
            )
    return findings


def _crio_findings(crio: CrioConfig) -> Iterator[Finding]:
    for problem in crio.problems:
        yield Finding(Level.ERROR, f"{problem}: CRI-O does not start with a config it cannot use")
    yield Finding(
        Level.OK,
        f"CRI-O reads hooks.d files from {_listed(crio.hooks_dir, 'hooks_dir', crio)} and CDI "
        f"specs from {_listed(crio.cdi_spec_dirs, 'cdi_spec_dirs', crio)}",
    )


def _containerd_findings(containerd: ContainerdConfig) -> Iterator[Finding]:
    config = containerd.files[0]
    for problem in containerd.problems:
        yield Finding(Level.ERROR, f"{problem}: containerd does not start with it")
    table = f'[plugins."{containerd.cri_table}"]'
    if containerd.cri_disabled:
        yield Finding(
            Level.OK,
            f"containerd: {config} disables its CRI plugin, so Kubernetes runs no container "
            "through it",
        )
    elif containerd.enable_cdi is False:
        yield Finding(
            Level.ERROR,
            f"containerd's CDI is off (enable_cdi = false in {table} of {config}): it never "
            "runs the hook from a CDI spec; set enable_cdi = true and restart containerd",
        )
    elif containerd.enable_cdi is None and containerd.version < 3:
        yield Finding(
            Level.ERROR,
            f"containerd's CDI is off: {config} (config version {containerd.version}) does not "
            f"set enable_cdi in {table}, which containerd 1.7 then leaves off (2.x turns it "
            "on): set enable_cdi = true and restart containerd, or no CDI spec runs the hook",
        )
    else:
        dirs = _listed(containerd.cdi_spec_dirs, "cdi_spec_dirs", None)
        yield Finding(Level.OK, f"containerd reads CDI specs from {dirs}, and no hooks.d files")


def _cdi_readers(
    crio: CrioConfig | None, containerd: ContainerdConfig | None
) -> dict[str, tuple[Path, ...]]:
    readers = {}
    if crio is not None:
        readers["CRI-O"] = crio.cdi_spec_dirs.directories
    if (
        containerd is not None
        and not containerd.cri_disabled
        and containerd.enable_cdi is not False
    ):
        readers["containerd"] = containerd.cdi_spec_dirs.directories
    return readers


def _spec_place_findings(path: Path, readers: dict[str, tuple[Path, ...]]) -> Iterator[Finding]:
    if not readers or any(_within(path, dirs) for dirs in readers.values()):
        return
    where = "; ".join(f"{engine} from {_joined(dirs)}" for engine, dirs in readers.items())
    yield Finding(
        Level.ERROR,
        f"{path}: no engine on this node reads CDI specs from {path.parent} ({where}), so "
        "this spec never runs the hook: move it into one of those directories",
    )


def _hooks_file_place_findings(path: Path, crio: CrioConfig) -> Iterator[Finding]:
    dirs = crio.hooks_dir.directories
    if _within(path, dirs):
        return
    read = _listed(crio.hooks_dir, "hooks_dir", crio)
    yield Finding(
        Level.ERROR,
        f"{path}: CRI-O reads hooks.d files only from {read}, so it never runs this file: "
        f"move it to {dirs[0]} (deployments/install-on-node.sh finds the directory)",
    )


def _listed(listed: Listed, key: str, crio: CrioConfig | None) -> str:
    if listed.source is not None:
        return f"{_joined(listed.directories)} ({key} in {listed.source})"
    where = f"; no {key} in {_joined(crio.files)}" if crio is not None and crio.files else ""
    return f"{_joined(listed.directories)} (the default{where})"


def _joined(paths: tuple[Path, ...]) -> str:
    return ", ".join(str(path) for path in paths)


def _within(path: Path, directories: tuple[Path, ...]) -> bool:
    """True when *path* is directly in one of *directories* (symlinks such as /var/run resolved)."""
    parent = os.path.realpath(path.parent)
    return any(os.path.realpath(directory) == parent for directory in directories)


def _is_cdi_spec(path: Path) -> bool:
    try:
        return cdi.is_spec(cdi.read_document(path))
    except (OSError, ValueError):
        return False


def _unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))
