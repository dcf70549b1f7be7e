"""The ``check`` command: hooks.d files and the node set-up the hook relies on.

A hooks.d file is checked against the 1.0.0 format (JSON Schema shipped in
the package), then for what this hook needs: regexes that compile (Python's
``re`` standing in for Go's RE2), anchored, and matching both the current
and the legacy value of the FPGA mode annotation (DESIGN.md section 1), no
other condition that keeps it from running (the runtime ANDs them), a stage
before the container's process starts, and an executable hook path.
The node part looks for the drivers' cards, their FME device nodes and a
readable bitstream store. Every finding is one line.
"""

import enum
import os
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from fpga_crihook import jsondocs
from fpga_crihook.commands.devices import CardInfo, Health, scan
from fpga_crihook.devices import Driver
from fpga_crihook.oci import MODE_ANNOTATION, REGION_MODES
from fpga_crihook.settings import ProgrammerKind, Settings

EARLY_STAGES = ("prestart", "createRuntime")  # run before the container's process
# Settings the node checks use, by the variable a hooks.d ``env`` sets them with.
NODE_SETTINGS = {
    "FPGA_CRIHOOK_SYSFS": ("sysfs", "--sysfs"),
    "FPGA_CRIHOOK_DEVFS": ("devfs", "--devfs"),
    "FPGA_CRIHOOK_BITSTREAMS": ("bitstreams", "--bitstreams"),
}
HOOK_COMMANDS = ("prestart", "createRuntime")
# Setting either asks for the events on stderr (see cli._asked_for_events).
EVENTS_ON_STDERR = ("FPGA_CRIHOOK_LOG_LEVEL", "FPGA_CRIHOOK_LOG_FORMAT")


class Level(enum.StrEnum):
    """How a finding counts: only errors make ``check`` exit 1."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


class Finding(NamedTuple):
    """One line of the report."""

    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def shipped_hooks_file() -> Path:
    """The hooks.d file this package ships (a copy of the repository's hooks.d/ file)."""
    return Path(str(resources.files("fpga_crihook").joinpath("data/intel-fpga-crihook.json")))


def run_checks(hooks_files: list[Path], settings: Settings) -> list[Finding]:
    """Check each hooks.d file, then the node."""
    findings = [finding for path in hooks_files for finding in check_hooks_file(path, settings)]
    return findings + check_node(settings)


def has_errors(findings: list[Finding]) -> bool:
    """True when any finding is an error."""
    return any(finding.level is Level.ERROR for finding in findings)


def check_hooks_file(path: Path, settings: Settings | None = None) -> list[Finding]:
    """Findings for one hooks.d file; with *settings*, also where its ``env`` points
    the hook elsewhere than the node checks look."""
    try:
        document = jsondocs.decode(path.read_bytes())
    except OSError as error:
        return [Finding(Level.ERROR, f"{path}: cannot read it: {error.strerror}")]
    except jsondocs.JsonProblem as problem:
        return [Finding(Level.ERROR, f"{path} {problem}")]
    schema_errors = [Finding(Level.ERROR, f"{path}: {text}") for text in _schema_errors(document)]
    if schema_errors:
        return schema_errors  # the checks below rely on the format's shape
    findings = [
        *_regex_findings(path, document["when"]),
        *_condition_findings(path, document["when"]),
        *_mode_findings(path, document["when"].get("annotations", {})),
        *_stage_findings(path, document["stages"]),
        *_hook_findings(path, document["hook"]),
        *_env_findings(path, document["hook"].get("env", []), settings),
        *_stderr_findings(path, document["hook"].get("env", [])),
    ]
    if not has_errors(findings):
        findings.append(Finding(Level.OK, f"{path}: valid hooks.d 1.0.0 file for fpga-crihook"))
    return findings


def check_node(settings: Settings) -> list[Finding]:
    """Findings for the node: drivers, cards, FME device nodes, bitstream store."""
    cards = scan(settings)
    findings = list(_driver_findings(cards, settings))
    for card in cards:
        findings.extend(_card_findings(card))
        findings.extend(_fpgaconf_port_findings(card, settings))
    findings.extend(_store_findings(settings.bitstreams, cards))
    return findings


def _schema_errors(document: Any) -> Iterator[str]:
    for error in sorted(
        jsondocs.schema_validator("hooks-1.0.0").iter_errors(document), key=lambda e: list(e.path)
    ):
        where = "/".join(str(part) for part in error.absolute_path) or "top level"
        yield f"breaks the hooks.d 1.0.0 format at {where}: {error.message}"


def _regex_findings(path: Path, when: Mapping[str, Any]) -> Iterator[Finding]:
    annotations: Mapping[str, str] = when.get("annotations", {})
    for key, value in annotations.items():
        for regex in (key, value):
            yield from _regex_problems(path, f"annotation regex {regex!r}", regex, anchored=True)
    for command in when.get("commands", []):
        yield from _regex_problems(path, f"command regex {command!r}", command, anchored=False)


def _regex_problems(path: Path, what: str, regex: str, anchored: bool) -> Iterator[Finding]:
    try:
        re.compile(regex)
    except re.error as error:
        yield Finding(Level.ERROR, f"{path}: {what} does not compile: {error}")
        return
    if anchored and not (regex.startswith("^") and regex.endswith("$")):
        yield Finding(
            Level.WARNING,
            f"{path}: {what} is not anchored (^...$): the runtime matches it "
            "anywhere in the string",
        )


def _condition_findings(path: Path, when: Mapping[str, Any]) -> Iterator[Finding]:
    """The runtime ANDs the conditions; a false ``always`` or ``hasBindMounts`` never matches."""
    for condition in ("always", "hasBindMounts"):
        if when.get(condition) is False:
            yield Finding(
                Level.ERROR,
                f"{path}: when.{condition} is false, which never matches: "
                "the runtime would run the hook for no container",
            )
    narrowing = {
        "hasBindMounts": "only for containers with bind mounts",
        "commands": "only for containers whose process.args[0] matches when.commands",
    }
    for condition, effect in narrowing.items():
        if when.get(condition):
            yield Finding(
                Level.WARNING,
                f"{path}: when.{condition} is set, so the runtime runs the hook {effect}: "
                "FPGA region containers without it start unprogrammed",
            )


def _mode_findings(path: Path, annotations: Mapping[str, str]) -> Iterator[Finding]:
    matching = {key: value for key, value in annotations.items() if _search(key, MODE_ANNOTATION)}
    if not matching:
        yield Finding(
            Level.ERROR,
            f"{path}: no when.annotations key matches {MODE_ANNOTATION}: the hook "
            "would not run for FPGA region containers",
        )
        return
    for key, value in matching.items():
        for mode in sorted(REGION_MODES):
            if not _search(value, mode):
                yield Finding(
                    Level.ERROR,
                    f"{path}: the value regex {value!r} for {key!r} does not match "
                    f"{mode!r}: containers annotated so would start without the hook",
                )


def _stage_findings(path: Path, stages: list[str]) -> Iterator[Finding]:
    if not any(stage in EARLY_STAGES for stage in stages):
        yield Finding(
            Level.ERROR,
            f"{path}: stages {stages} include neither prestart nor createRuntime: "
            "the accelerator would not be in place when the container starts",
        )


def _hook_findings(path: Path, hook: Mapping[str, Any]) -> Iterator[Finding]:
    executable = hook["path"]
    if not os.path.isfile(executable):
        yield Finding(Level.ERROR, f"{path}: hook.path {executable} does not exist")
    elif not os.access(executable, os.X_OK):
        yield Finding(Level.ERROR, f"{path}: hook.path {executable} is not executable")
    arguments = hook.get("args", [])
    if not any(command in arguments[1:] for command in HOOK_COMMANDS):
        yield Finding(
            Level.ERROR,
            f"{path}: hook.args {arguments} do not name the prestart command "
            '(expected e.g. ["fpga-crihook", "prestart"])',
        )


def _env_findings(path: Path, env: list[str], settings: Settings | None) -> Iterator[Finding]:
    if settings is None:
        return
    for variable, value in (entry.split("=", 1) for entry in env):
        if variable not in NODE_SETTINGS:
            continue
        attribute, option = NODE_SETTINGS[variable]
        checked = getattr(settings, attribute)
        if Path(value) != checked:
            yield Finding(
                Level.WARNING,
                f"{path}: hook.env sets {variable}={value}, but this check looked at "
                f"{checked} ({option} checks what the hook uses)",
            )


def _stderr_findings(path: Path, env: list[str]) -> Iterator[Finding]:
    for variable in sorted({entry.split("=", 1)[0] for entry in env} & set(EVENTS_ON_STDERR)):
        yield Finding(
            Level.WARNING,
            f"{path}: hook.env sets {variable}, which puts the hook's JSON events on "
            "stderr too, and runc pastes all of stderr into a failed pod's error: "
            "leave it out (the journal and the log file get the events without it)",
        )


def _driver_findings(cards: list[CardInfo], settings: Settings) -> Iterator[Finding]:
    if not cards:
        yield Finding(
            Level.ERROR,
            f"no FPGA cards under {settings.sysfs}: neither the dfl driver "
            "(class/fpga_region) nor the OPAE driver (class/fpga) shows one",
        )
        return
    for driver in Driver:
        count = sum(1 for card in cards if card.driver is driver)
        if count:
            where = settings.sysfs / driver.value.class_dir
            yield Finding(Level.OK, f"{driver.label} driver: {count} card(s) under {where}")


def _card_label(card: CardInfo) -> str:
    return f"{card.driver.label} card {card.name} ({card.pci_address or 'no PCI address'})"


def _card_findings(card: CardInfo) -> Iterator[Finding]:
    name = _card_label(card)
    if card.fme is None:
        yield Finding(Level.ERROR, f"{name}: {card.problem}")
        return
    if os.path.exists(card.fme.device_node):
        yield Finding(Level.OK, f"{name}: FME device node {card.fme.device_node} present")
    else:
        yield Finding(
            Level.ERROR,
            f"{name}: FME device node {card.fme.device_node} is missing: "
            "nothing can be programmed on this card",
        )
    readings = [card.fme.interface, *(port.afu for port in card.ports)]
    for reading in readings:
        if reading.health is Health.HEALTHY:
            continue
        level = Level.WARNING if reading.health is Health.BUSY else Level.ERROR
        detail = reading.problem or "it reports all-ones IDs: the firmware has crashed"
        yield Finding(level, f"{name}: {reading.health}: {detail}")


def _fpgaconf_port_findings(card: CardInfo, settings: Settings) -> Iterator[Finding]:
    """fpgaconf programs port 0 of an FME only: the hook refuses the others under it."""
    if settings.programmer is not ProgrammerKind.FPGACONF:
        return
    others = [port.name for port in card.ports if port.port_id != 0]
    if others:
        yield Finding(
            Level.WARNING,
            f"{_card_label(card)}: the fpgaconf programmer always programs port 0 of the "
            f"FME, so the hook refuses {', '.join(others)} "
            "(FPGA_CRIHOOK_PROGRAMMER=ioctl programs every port)",
        )


def _store_findings(store: Path, cards: list[CardInfo]) -> Iterator[Finding]:
    if not store.is_dir() or not os.access(store, os.R_OK | os.X_OK):
        yield Finding(Level.ERROR, f"bitstream store {store} is missing or not readable")
        return
    bitstreams = [path for path in store.glob("*/*") if path.suffix in (".gbs", ".aocx")]
    yield Finding(Level.OK, f"bitstream store {store}: {len(bitstreams)} bitstream(s)")
    for card in cards:
        region = card.fme.interface.value if card.fme is not None else None
        if region is not None and not (store / region).is_dir():
            yield Finding(
                Level.WARNING,
                f"bitstream store {store} has nothing for region {region} "
                f"({card.driver.label} card {card.name})",
            )


def _search(regex: str, text: str) -> bool:
    try:
        return re.search(regex, text) is not None
    except re.error:
        return False  # reported by the regex findings
