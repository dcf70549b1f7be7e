"""A hook that would run twice: a hooks.d file and a CDI spec that both run fpga-crihook.

A container in region mode that is given one of the spec's devices matches
both, and its ports would be programmed twice (docs/design.md#cdi): one of
the two must go. Which one the error advises depends on who wrote the spec:
Intel's device plugin (then the hooks.d file is the one too many) or
``cdi generate`` (then either, as long as the engine that runs containers
reads the one kept: containerd reads no hooks.d file).
"""

from collections.abc import Iterator
from pathlib import Path

from fpga_crihook import cdispec
from fpga_crihook.commands.check.documents import Document, runner
from fpga_crihook.commands.check.findings import Finding, Level


def double_run_findings(documents: list[Document]) -> Iterator[Finding]:
    """An error for each hooks.d file and CDI spec among *documents* that would both run the
    hook for one container: a region-mode container given one of the spec's devices."""
    hooks_files: list[Path] = []
    specs: list[tuple[Path, cdispec.Scalar]] = []
    for document in documents:
        runs = runner(document)
        if isinstance(runs, cdispec.Spec):
            specs.append((document.path, runs.kind))
        elif runs is not None:
            hooks_files.append(document.path)
    for hooks_file in hooks_files:
        for spec, kind in specs:
            if kind == cdispec.INTEL_KIND:
                advice = f"remove {hooks_file}: Intel's device plugin runs the hook through {spec}"
            else:
                advice = f"keep one: remove {spec}, or {hooks_file} (containerd never reads it)"
            yield Finding(
                Level.ERROR,
                f"{hooks_file} and {spec} both run fpga-crihook for an FPGA region container "
                f"given a device of kind {kind}, whose ports would be programmed twice: {advice}",
            )
