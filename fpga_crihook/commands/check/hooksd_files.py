"""hooks.d files: the 1.0.0 format, then what this hook needs of one.

A file is checked against the format's JSON Schema shipped in the package;
the checks below rely on its shape, so a file that breaks it gets only those
findings. Then: regexes that compile (Python's ``re`` standing in for Go's
RE2, under a CPU limit: :mod:`~fpga_crihook.commands.check.regexes`),
anchored, and matching both the current and the legacy value of the FPGA
mode annotation (docs/design.md#purpose, docs/design.md#hooks-d); no other
condition that keeps the hook from running (the runtime ANDs them); a stage
before the container's process starts; an executable program named with
the prestart command; and what :mod:`~fpga_crihook.commands.check.hooks`
checks of any hook's env and timeout.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path

from fpga_crihook import hooksd
from fpga_crihook.commands.check import hooks, regexes
from fpga_crihook.commands.check.documents import NotASpec
from fpga_crihook.commands.check.findings import (
    Finding,
    Level,
    has_errors,
    schema_errors,
    shortened,
)
from fpga_crihook.oci import MODE_ANNOTATION, REGION_MODES
from fpga_crihook.settings import Settings

_FORMAT = f"hooks.d {hooksd.VERSION}"  # as the findings name it


def hooks_file_findings(document: NotASpec, settings: Settings | None) -> list[Finding]:
    """Findings for the hooks.d file read as *document*; with *settings*, also where its
    ``env`` points the hook elsewhere than the node checks look."""
    path = document.path
    problems = hooksd.schema_problems(document.value)
    if problems:  # the checks below rely on the format's shape
        return [
            Finding(Level.ERROR, f"{path}: {text}") for text in schema_errors(problems, _FORMAT)
        ]
    hooks_file = hooksd.parse(document.value)
    hook, env = hooks_file.hook, list(hooks_file.hook.env)
    names = hooks.HookNames(str(path), "hook.timeout", "hook.env")
    findings = [
        *_when_findings(path, hooks_file.when),
        *_condition_findings(path, hooks_file.when),
        *_stage_findings(path, list(hooks_file.stages)),
        *_hook_findings(path, hook),
        *hooks.deadline_findings(names, hook.timeout, env, settings),
        *hooks.env_findings(path, env, settings),
        *hooks.stderr_findings(path, env),
    ]
    if not has_errors(findings):
        findings.append(Finding(Level.OK, f"{path}: valid {_FORMAT} file for fpga-crihook"))
    return findings


def _when_findings(path: Path, when: hooksd.When) -> list[Finding]:
    """The regexes of ``when``: do they compile, and run the hook for FPGA region containers."""
    annotations = when.annotations
    every_regex = [*annotations, *annotations.values(), *when.commands]
    matches = regexes.match(every_regex, [MODE_ANNOTATION, *sorted(REGION_MODES)])
    if matches is None:
        return [
            Finding(
                Level.ERROR,
                f"{path}: Python's re takes more than {regexes.CPU_LIMIT:g} s over the regexes "
                "of when (the runtime's Go regexp takes linear time), so check cannot tell "
                "whether the hook runs for FPGA region containers: simplify them",
            )
        ]
    return [*_regex_findings(path, when, matches), *_mode_findings(path, annotations, matches)]


def _regex_findings(path: Path, when: hooksd.When, matches: regexes.Matches) -> Iterator[Finding]:
    for key, value in when.annotations.items():
        for regex in (key, value):
            what = f"annotation regex {shortened(repr(regex))}"
            yield from _regex_problems(path, what, regex, matches, anchored=True)
    for command in when.commands:
        what = f"command regex {shortened(repr(command))}"
        yield from _regex_problems(path, what, command, matches, anchored=False)


def _regex_problems(
    path: Path, what: str, regex: str, matches: regexes.Matches, anchored: bool
) -> Iterator[Finding]:
    if regex in matches.errors:
        yield Finding(Level.ERROR, f"{path}: {what} does not compile: {matches.errors[regex]}")
        return
    if anchored and not (regex.startswith("^") and regex.endswith("$")):
        yield Finding(
            Level.WARNING,
            f"{path}: {what} is not anchored (^...$): the runtime matches it "
            "anywhere in the string",
        )


def _condition_findings(path: Path, when: hooksd.When) -> Iterator[Finding]:
    """The runtime ANDs the conditions; a false ``always`` or ``hasBindMounts`` never matches."""
    for condition, value in (("always", when.always), ("hasBindMounts", when.has_bind_mounts)):
        if value is False:
            yield Finding(
                Level.ERROR,
                f"{path}: when.{condition} is false, which never matches: "
                "the runtime would run the hook for no container",
            )
    narrowing: dict[str, tuple[object, str]] = {
        "hasBindMounts": (when.has_bind_mounts, "only for containers with bind mounts"),
        "commands": (
            when.commands,
            "only for containers whose process.args[0] matches when.commands",
        ),
    }
    for condition, (setting, effect) in narrowing.items():
        if setting:
            yield Finding(
                Level.WARNING,
                f"{path}: when.{condition} is set, so the runtime runs the hook {effect}: "
                "FPGA region containers without it start unprogrammed",
            )


def _mode_findings(
    path: Path, annotations: Mapping[str, str], matches: regexes.Matches
) -> Iterator[Finding]:
    matching = {
        key: value for key, value in annotations.items() if matches.search(key, MODE_ANNOTATION)
    }
    if not matching:
        yield Finding(
            Level.ERROR,
            f"{path}: no when.annotations key matches {MODE_ANNOTATION}: the hook "
            "would not run for FPGA region containers",
        )
        return
    for key, value in matching.items():
        for mode in sorted(REGION_MODES):
            if not matches.search(value, mode):
                yield Finding(
                    Level.ERROR,
                    f"{path}: the value regex {value!r} for {key!r} does not match "
                    f"{mode!r}: containers annotated so would start without the hook",
                )


def _stage_findings(path: Path, stages: list[str]) -> Iterator[Finding]:
    if not any(stage in hooks.EARLY_STAGES for stage in stages):
        yield Finding(
            Level.ERROR,
            f"{path}: stages {stages} include neither prestart nor createRuntime: "
            "the accelerator would not be in place when the container starts",
        )


def _hook_findings(path: Path, hook: hooksd.Hook) -> Iterator[Finding]:
    if problem := hooks.program_problem(hook.path):
        yield Finding(Level.ERROR, f"{path}: hook.path {hook.path} {problem}")
    arguments = list(hook.args)
    if not hooks.names_a_hook_command(arguments):
        yield Finding(
            Level.ERROR,
            f"{path}: hook.args {arguments} do not name the prestart command "
            '(expected e.g. ["fpga-crihook", "prestart"])',
        )
