"""The hook as installed: the directories ``check`` searches when no file is named.

Those are the runtimes' usual ones (hooks.d: containers/common's two; CDI:
the spec's defaults) and the ones the engines' configs on the node name
(CRI-O's ``hooks_dir`` and ``cdi_spec_dirs``, containerd's
``cdi_spec_dirs``), unless ``--hooks-dir`` or ``--cdi-spec-dir`` name others.
Of the files there (``*.json`` in a hooks.d directory; ``*.json`` and
``*.yaml`` in a CDI directory, as runtimes read them), those that run
fpga-crihook are checked; none is a warning.
"""

from pathlib import Path

from fpga_crihook import engineconfig
from fpga_crihook.commands.check import documents
from fpga_crihook.commands.check.findings import Finding, Level
from fpga_crihook.engineconfig import ContainerdConfig, CrioConfig

# Where runtimes look (CRI-O and podman: containers/common; CDI: the spec's defaults).
HOOKS_DIRS = (Path("/usr/share/containers/oci/hooks.d"), Path("/etc/containers/oci/hooks.d"))
CDI_SPEC_DIRS = engineconfig.DEFAULT_CDI_SPEC_DIRS


def hooks_dirs_to_search(crio: CrioConfig | None) -> list[Path]:
    """The runtimes' usual hooks.d directories and CRI-O's own, each once."""
    return _unique([*HOOKS_DIRS, *(crio.hooks_dir.directories if crio else ())])


def cdi_dirs_to_search(crio: CrioConfig | None, containerd: ContainerdConfig | None) -> list[Path]:
    """CDI's usual spec directories and those the engines' configs name, each once."""
    return _unique(
        [
            *CDI_SPEC_DIRS,
            *(crio.cdi_spec_dirs.directories if crio else ()),
            *(containerd.cdi_spec_dirs.directories if containerd else ()),
        ]
    )


def installed_documents(hooks_dirs: list[Path], cdi_dirs: list[Path]) -> list[documents.Document]:
    """The hooks.d files and CDI specs in *hooks_dirs* and *cdi_dirs* that run fpga-crihook,
    each read once, in the order searched (by name within a directory)."""
    found: list[documents.Document] = []
    for directory, patterns in [
        *((directory, ("*.json",)) for directory in hooks_dirs),
        *((directory, ("*.json", "*.yaml")) for directory in cdi_dirs),
    ]:
        candidates = sorted(path for pattern in patterns for path in directory.glob(pattern))
        read = (documents.read(path) for path in candidates)
        found.extend(document for document in read if documents.runs_the_hook(document))
    return found


def installed_findings(installed: list[documents.Document], searched: list[Path]) -> list[Finding]:
    """A warning when nothing in the *searched* directories runs the hook."""
    if installed:
        return []
    where = ", ".join(str(directory) for directory in searched)
    return [
        Finding(
            Level.WARNING,
            f"no hooks.d file or CDI spec in {where} runs fpga-crihook: install the hooks.d "
            "file (CRI-O, podman) or a CDI spec (fpga-crihook cdi generate; or Intel's device "
            "plugin with the intel-fpga-crihook drop-in)",
        )
    ]


def _unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))
