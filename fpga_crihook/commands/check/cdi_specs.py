"""CDI specs (docs/design.md#cdi): the hooks that run fpga-crihook, and what they need.

A spec of ``cdiVersion`` 0.5.0 is checked against the format's JSON Schema
shipped in the package: a runtime drops a spec that breaks it, so that is
all the findings then. A spec of another version is read for its hooks
only. The hooks that run us are every hook of an FPGA kind, else those whose
program is ours (:func:`fpga_crihook.commands.cdi.our_hooks`); each must run
before the container's process starts, name a program that is there, ask
for the createRuntime command (and, but for Intel's kind, ``--cdi``), and
keep what :mod:`~fpga_crihook.commands.check.hooks` checks of any hook's env
and timeout. A device node the spec names that the node lacks is a warning:
the spec was made for another node, or before a change.
"""

import os
from collections.abc import Iterator
from pathlib import Path

from fpga_crihook import cdispec
from fpga_crihook.commands import cdi
from fpga_crihook.commands.check import hooks
from fpga_crihook.commands.check.documents import SpecFile
from fpga_crihook.commands.check.findings import Finding, Level, has_errors, schema_errors
from fpga_crihook.jsondocs import SchemaProblem
from fpga_crihook.settings import Settings


def spec_findings(document: SpecFile, settings: Settings | None) -> list[Finding]:
    """Findings for the CDI spec read as *document*: its format, and the hooks that run us."""
    path, spec = document.path, document.spec
    known = spec.cdi_version == cdispec.CDI_VERSION
    format_findings = list(
        _format_findings(path, spec, cdispec.schema_problems(document.value) if known else [])
    )
    if has_errors(format_findings):
        return format_findings  # the runtime drops the whole file
    ours = cdi.our_hooks(spec)
    findings = [
        *format_findings,
        *_kind_findings(path, spec, ours),
        *(finding for hook in ours for finding in _hook_findings(path, spec, hook)),
        *(finding for hook in ours for finding in _timeout_findings(path, hook, settings)),
        *(finding for hook in ours for finding in hooks.env_findings(path, _env(hook), settings)),
        *(finding for hook in ours for finding in hooks.stderr_findings(path, _env(hook))),
        *_device_node_findings(path, spec),
    ]
    if ours and not has_errors(findings):
        stages = sorted({str(hook.hook.hook_name) for hook in ours})
        findings.append(
            Finding(
                Level.OK,
                f"{path}: CDI spec (cdiVersion {spec.cdi_version}, kind "
                f"{spec.kind}) runs fpga-crihook at {', '.join(stages)}",
            )
        )
    return findings


def not_a_spec(path: Path) -> Finding:
    """The finding for a YAML file that holds no CDI spec (hooks.d files are JSON)."""
    return Finding(Level.ERROR, f"{path}: not a CDI spec (no cdiVersion)")


def _format_findings(
    path: Path, spec: cdispec.Spec, problems: list[SchemaProblem]
) -> Iterator[Finding]:
    if spec.cdi_version != cdispec.CDI_VERSION:
        yield Finding(
            Level.WARNING,
            f"{path}: cdiVersion {spec.cdi_version!r}: fpga-crihook knows the CDI "
            f"{cdispec.CDI_VERSION} format only, so only the hooks were checked",
        )
        return
    for text in schema_errors(problems, f"CDI {cdispec.CDI_VERSION}"):
        yield Finding(Level.ERROR, f"{path}: {text} (the runtime would ignore the whole file)")


def _kind_findings(
    path: Path, spec: cdispec.Spec, ours: list[cdispec.SpecHook]
) -> Iterator[Finding]:
    kind = spec.kind
    if not ours and kind in cdispec.FPGA_KINDS:
        yield Finding(
            Level.ERROR,
            f"{path}: no hook in this {kind} spec: containers given its devices start "
            "without their accelerator programmed",
        )
    elif not ours:
        yield Finding(Level.WARNING, f"{path}: kind {kind}: no hook runs fpga-crihook here")


def _hook_findings(path: Path, spec: cdispec.Spec, hook: cdispec.SpecHook) -> Iterator[Finding]:
    name, executable = hook.hook.hook_name, str(hook.hook.path)
    where = f"{path}: {hook.where}: hook {executable}"
    if name not in hooks.EARLY_STAGES:
        yield Finding(
            Level.ERROR,
            f"{where} runs at {name}, neither prestart nor createRuntime: the accelerator "
            "would not be in place when the container starts",
        )
    problem = hooks.program_problem(executable)
    if problem == hooks.MISSING and hook.hook.program == cdi.DROP_IN:
        problem += (
            " (the intel-fpga-crihook image puts the drop-in there as the init container of "
            "Intel's FPGA plugin DaemonSet)"
        )
    if problem:
        yield Finding(Level.ERROR, f"{where} {problem}")
    yield from _argument_findings(where, spec, hook.hook)


def _argument_findings(where: str, spec: cdispec.Spec, hook: cdispec.Hook) -> Iterator[Finding]:
    arguments = list(hook.args)
    if hook.program == cdi.DROP_IN:
        return  # the drop-in is createRuntime already: no argument needed
    if not hooks.names_a_hook_command(arguments):
        yield Finding(
            Level.ERROR,
            f"{where}: args {arguments} do not name the createRuntime command "
            f'(expected e.g. ["fpga-crihook", "createRuntime", "{cdi.CDI_ARGUMENT}"])',
        )
    elif cdi.CDI_ARGUMENT not in arguments and spec.kind != cdispec.INTEL_KIND:
        yield Finding(
            Level.WARNING,
            f"{where}: args {arguments} lack {cdi.CDI_ARGUMENT}: a container given a device "
            f"of kind {spec.kind} without the FPGA region annotation starts "
            "without its accelerator programmed",
        )


def _timeout_findings(
    path: Path, hook: cdispec.SpecHook, settings: Settings | None
) -> Iterator[Finding]:
    names = hooks.HookNames(f"{path}: {hook.where}: hook {hook.hook.path}", "timeout", "its env")
    return hooks.deadline_findings(names, hook.hook.timeout, _env(hook), settings)


def _device_node_findings(path: Path, spec: cdispec.Spec) -> Iterator[Finding]:
    devices_by_node: dict[str, list[str]] = {}
    for device, node in spec.device_nodes():
        devices_by_node.setdefault(node.on_the_host, []).append(device)
    for host_path, devices in devices_by_node.items():
        if not os.path.exists(host_path):
            yield Finding(
                Level.WARNING,
                f"{path}: {host_path} (device {', '.join(devices)}) does not exist on this "
                "node: regenerate the spec (fpga-crihook cdi generate)",
            )


def _env(hook: cdispec.SpecHook) -> list[str]:
    return [entry for entry in hook.hook.env if "=" in entry]
