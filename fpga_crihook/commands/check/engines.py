"""``check``: which directories the engines on this node read, and the hook's files none reads.

An engine is on the node when its config is (:mod:`fpga_crihook.engineconfig`):
CRI-O reads hooks.d files and CDI specs; containerd reads CDI specs only,
and only with CDI on. A hooks.d file outside CRI-O's ``hooks_dir``, or a CDI
spec outside every reading engine's spec directories, is a hook that never
runs: an error, as is containerd with CDI off. With no engine config on the
node there is nothing to say here.

Which runtime CRI-O runs containers with says where a failed hook's sentence
goes: runc puts it into the pod's events; crun sends it to /dev/null (or to
the file a ``run.oci.hooks.stderr`` annotation names) and reports only the
exit status, so the sentence is in the journal and the log file.
"""

import os
from collections.abc import Iterator
from pathlib import Path

from fpga_crihook import logs
from fpga_crihook.commands.check.documents import Document, SpecFile
from fpga_crihook.commands.check.findings import Finding, Level
from fpga_crihook.engineconfig import ContainerdConfig, CrioConfig, CrioRuntime, Listed
from fpga_crihook.inforce import SettingsInForce

# crun's annotation for a file that gets a hook's stderr; CRI-O 1.27.6, 1.28.6, 1.29.4 and
# 1.30 on drop every run.oci. annotation unless the handler's allowed_annotations lists this.
HOOKS_STDERR_ANNOTATION = "run.oci.hooks.stderr"
RUN_OCI_PREFIX = "run.oci."


def engine_findings(
    crio: CrioConfig | None, containerd: ContainerdConfig | None, documents: list[Document]
) -> list[Finding]:
    """What each engine reads, its config's problems, and each of *documents* (hooks.d files
    and CDI specs that run the hook) that sits where no engine on the node looks."""
    findings: list[Finding] = []
    if crio is not None:
        findings += _crio_findings(crio)
    if containerd is not None:
        findings += _containerd_findings(containerd)
    readers = _cdi_readers(crio, containerd)
    for document in documents:
        path = document.path
        if isinstance(document, SpecFile):
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


def runtime_findings(crio: CrioConfig | None, in_force: SettingsInForce) -> list[Finding]:
    """Which runtime CRI-O runs containers with and where, under it, a failed hook's sentence
    goes: a warning when it would go nowhere."""
    if crio is None:
        return []
    runtime = crio.runtime
    if runtime.name is None:
        files = _joined(crio.files)
        return [
            _under_crun(
                runtime,
                in_force,
                f"CRI-O's config ({files}) sets no default_runtime, so CRI-O's own default "
                "runs containers: runc up to CRI-O 1.30 (a failed hook's line reaches the "
                "pod's events), crun from 1.31 (`crio version` tells the release). Under crun",
            )
        ]
    named = f"default_runtime {runtime.name!r} in {runtime.source}"
    if runtime.runtime_path is not None:
        named += f", runtime_path {runtime.runtime_path}"
    if runtime.program == "runc":
        return [
            Finding(
                Level.OK,
                f"CRI-O runs containers with runc ({named}): a failed hook's line reaches the "
                "pod's events",
            )
        ]
    if runtime.program == "crun":
        return [_under_crun(runtime, in_force, f"CRI-O runs containers with crun ({named}):")]
    places = " and ".join(_sentence_places(in_force)) or "neither the journal nor a log file"
    return [
        Finding(
            Level.OK,
            f"CRI-O runs containers with {runtime.program} ({named}), neither runc nor crun: "
            "whether a failed hook's line reaches the pod's events is up to it; the exit "
            "status says the class of failure (`fpga-crihook prestart --help`), and the line "
            f"is in {places}",
        )
    ]


def _under_crun(runtime: CrioRuntime, in_force: SettingsInForce, opening: str) -> Finding:
    places = _sentence_places(in_force)
    if RUN_OCI_PREFIX in runtime.allowed_annotations:
        annotation = (
            f"a pod may also name a file for it in its {HOOKS_STDERR_ANNOTATION} annotation "
            f"(the handler's allowed_annotations lets {RUN_OCI_PREFIX} through)"
        )
    else:
        annotation = (
            f"a pod's {HOOKS_STDERR_ANNOTATION} annotation, naming a file for it, reaches "
            f"the runtime only if the handler's allowed_annotations lists {RUN_OCI_PREFIX!r} "
            "(CRI-O 1.27.6, 1.28.6, 1.29.4, 1.30 and later)"
        )
    opening += (
        " a failed hook's line does not reach the pod's events, only its exit status "
        "(`fpga-crihook prestart --help` says what each means)"
    )
    if not places:
        return Finding(
            Level.WARNING,
            f"{opening}, and its sentence goes nowhere: syslog is off or {logs.DEV_LOG} is "
            "no socket, and no log-file is set (set log-file in the node config file); "
            f"{annotation}",
        )
    return Finding(Level.OK, f"{opening}; the line is in {' and '.join(places)}; {annotation}")


def _sentence_places(in_force: SettingsInForce) -> list[str]:
    """Where the hook's events go with these settings: the journal, the log file."""
    places = []
    if logs.syslog_address(in_force.value("syslog")) is not None:
        places.append(f"the journal (journalctl -t {logs.IDENTIFIER} -p err)")
    if (log_file := in_force.value("log-file")) is not None:
        places.append(f"the log file {log_file}")
    return places


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
