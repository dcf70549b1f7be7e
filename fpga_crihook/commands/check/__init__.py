"""The ``check`` command: hooks.d files and the node set-up the hook relies on.

A hooks.d file is checked against the 1.0.0 format (JSON Schema shipped in
the package), then for what this hook needs: regexes that compile (Python's
``re`` standing in for Go's RE2, under a CPU limit: see
:mod:`~fpga_crihook.commands.check.regexes`), anchored, and matching both the current
and the legacy value of the FPGA mode annotation (DESIGN.md section 1), no
other condition that keeps it from running (the runtime ANDs them), a stage
before the container's process starts, an executable hook path, and a
``timeout`` above the hook's own deadline (else the runtime may kill the hook
in the middle of programming). The node part looks for the drivers' cards,
their FME device nodes and a readable bitstream store. CDI specs (DESIGN.md
section 2) are checked for what runs the hook: a createRuntime (or prestart)
hook whose program is there, with such a ``timeout``. A node where a hooks.d file and a CDI spec
would both run the hook for one container is an error: the port would be
programmed twice. The report starts with the node config file and every
setting in force, with where it came from. Every finding is one line. Only
regular files are read, and never with a blocking open: ``check`` pointed at
a FIFO reports it instead of hanging. Every file is bounded (size, values,
depth, no YAML aliases), so checking one takes well under a second.
"""

import enum
import os
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import NamedTuple, TypeGuard

import click

from fpga_crihook import cdispec, hooksd, jsondocs
from fpga_crihook.commands import cdi, output
from fpga_crihook.commands.check import regexes
from fpga_crihook.commands.devices import CardInfo, Health, scan
from fpga_crihook.deadline import DEADLINE_VARIABLE, DEFAULT_DEADLINE
from fpga_crihook.devices import Driver
from fpga_crihook.errors import BitstreamError, ExitStatus
from fpga_crihook.inforce import InForce, Origin, SettingsInForce, env_text
from fpga_crihook.jsondocs import SchemaProblem
from fpga_crihook.oci import MODE_ANNOTATION, REGION_MODES
from fpga_crihook.settings import ASKING_FOR_EVENTS, ProgrammerKind, Settings, declared
from fpga_crihook.settingtypes import MAX_SECONDS, Seconds
from fpga_crihook.store import open_directory, open_entry

_MISSING = "does not exist"  # a hook program that is not there
EARLY_STAGES = ("prestart", "createRuntime")  # run before the container's process
# Settings the node checks use, by the variable a hooks.d ``env`` sets them with.
NODE_SETTINGS = {
    setting.env_var: (setting.name, setting.option)
    for setting in map(declared, ("sysfs", "devfs", "bitstreams"))
}
HOOK_COMMANDS = ("prestart", "createRuntime")
# Setting either asks for the events on stderr (see logs.stderr_format).
EVENTS_ON_STDERR = tuple(setting.env_var for setting in ASKING_FOR_EVENTS)
# Where runtimes look (CRI-O and podman: containers/common; CDI: the spec's defaults).
HOOKS_DIRS = (Path("/usr/share/containers/oci/hooks.d"), Path("/etc/containers/oci/hooks.d"))
CDI_SPEC_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
MAX_SCHEMA_ERRORS = 20  # findings for one file's format: more would bury the rest
MAX_QUOTED = 300  # characters of a document's text quoted in a finding


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


def run_checks(
    hooks_files: list[Path], settings: Settings, installed: list[Path] | None = None
) -> list[Finding]:
    """Check each hooks.d file or CDI spec, that no two of *installed* run the hook for one
    container, then the node."""
    findings = [finding for path in hooks_files for finding in check_file(path, settings)]
    findings.extend(double_run_findings(installed or []))
    return findings + check_node(settings)


def check_file(path: Path, settings: Settings | None = None) -> list[Finding]:
    """Findings for a hooks.d file or a CDI spec, told apart by what they hold."""
    if path.suffix in (".yaml", ".yml"):
        return check_cdi_spec(path, settings)
    try:
        document = jsondocs.read_bounded(path)
    except (OSError, jsondocs.JsonProblem):
        document = None  # check_hooks_file says what is wrong with it
    if cdispec.is_spec(document):
        return check_cdi_spec(path, settings)
    return check_hooks_file(path, settings)


def installed_files(hooks_dirs: list[Path], cdi_dirs: list[Path]) -> list[Path]:
    """The hooks.d files and CDI specs in the runtimes' directories that run fpga-crihook."""
    found: list[Path] = []
    for directory, patterns in [
        *((directory, ("*.json",)) for directory in hooks_dirs),
        *((directory, ("*.json", "*.yaml")) for directory in cdi_dirs),
    ]:
        candidates = sorted(path for pattern in patterns for path in directory.glob(pattern))
        found.extend(path for path in candidates if _runs_the_hook(path))
    return found


def installed_findings(installed: list[Path], searched: list[Path]) -> list[Finding]:
    """A warning when nothing in the runtimes' directories runs the hook."""
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


def config_findings(in_force: SettingsInForce) -> list[Finding]:
    """The node config file, then every setting in force and where it came from."""
    config, settings = in_force.config_file, in_force.entries
    named = "" if config.named_by is Origin.DEFAULT else f" (named on the {config.named_by})"
    if config.found:
        count = sum(1 for setting in settings if setting.origin is Origin.CONFIG_FILE)
        summary = f"config file {config.path}{named}: {count} setting(s) in force from it"
    else:
        summary = f"no config file at {config.path}{named}: nothing read from one"
    return [Finding(Level.OK, summary), *(Finding(Level.OK, _setting_line(s)) for s in settings)]


def has_errors(findings: list[Finding]) -> bool:
    """True when any finding is an error."""
    return any(finding.level is Level.ERROR for finding in findings)


def check_hooks_file(path: Path, settings: Settings | None = None) -> list[Finding]:
    """Findings for one hooks.d file; with *settings*, also where its ``env`` points
    the hook elsewhere than the node checks look."""
    try:
        document = jsondocs.read_bounded(path)
    except OSError as error:
        return [Finding(Level.ERROR, f"{path}: cannot read it: {error.strerror}")]
    except jsondocs.JsonProblem as problem:
        return [Finding(Level.ERROR, f"{path} {problem}")]
    problems = hooksd.schema_problems(document)
    if problems:  # the checks below rely on the format's shape
        return [
            Finding(Level.ERROR, f"{path}: {text}")
            for text in _schema_errors(problems, "hooks.d 1.0.0")
        ]
    hooks_file = hooksd.parse(document)
    hook, env = hooks_file.hook, list(hooks_file.hook.env)
    findings = [
        *_when_findings(path, hooks_file.when),
        *_condition_findings(path, hooks_file.when),
        *_stage_findings(path, list(hooks_file.stages)),
        *_hook_findings(path, hook),
        *_deadline_findings(
            _HookTimeout(str(path), "hook.timeout", "hook.env"), hook.timeout, env, settings
        ),
        *_env_findings(path, env, settings),
        *_stderr_findings(path, env),
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


def check_cdi_spec(path: Path, settings: Settings | None = None) -> list[Finding]:
    """Findings for one CDI spec: its format (cdiVersion 0.5.0), and the hooks that run us."""
    try:
        document = cdispec.read_document(path)
    except OSError as error:
        return [Finding(Level.ERROR, f"{path}: cannot read it: {error.strerror}")]
    except jsondocs.JsonProblem as problem:
        return [Finding(Level.ERROR, f"{path} {problem}")]
    if not cdispec.is_spec(document):
        return [Finding(Level.ERROR, f"{path}: not a CDI spec (no cdiVersion)")]
    spec = cdispec.parse(document)
    known = spec.cdi_version == cdispec.CDI_VERSION
    format_findings = list(
        _cdi_format_findings(path, spec, cdispec.schema_problems(document) if known else [])
    )
    if any(finding.level is Level.ERROR for finding in format_findings):
        return format_findings  # the runtime drops the whole file
    hooks = cdi.our_hooks(spec)
    findings = [
        *format_findings,
        *_cdi_kind_findings(path, spec, hooks),
        *(finding for hook in hooks for finding in _cdi_hook_findings(path, spec, hook)),
        *(finding for hook in hooks for finding in _cdi_timeout_findings(path, hook, settings)),
        *(finding for hook in hooks for finding in _env_findings(path, _env(hook), settings)),
        *(finding for hook in hooks for finding in _stderr_findings(path, _env(hook))),
        *_cdi_device_node_findings(path, spec),
    ]
    if hooks and not has_errors(findings):
        stages = sorted({str(hook.hook.hook_name) for hook in hooks})
        findings.append(
            Finding(
                Level.OK,
                f"{path}: CDI spec (cdiVersion {spec.cdi_version}, kind "
                f"{spec.kind}) runs fpga-crihook at {', '.join(stages)}",
            )
        )
    return findings


def double_run_findings(paths: list[Path]) -> Iterator[Finding]:
    """An error for each hooks.d file and CDI spec that would both run the hook for one
    container: a region-mode container given one of the spec's devices."""
    hooks_files, specs = [], []
    for path in paths:
        runner = _runner(path)
        if isinstance(runner, cdispec.Spec):
            specs.append((path, runner.kind))
        elif runner is not None:
            hooks_files.append(path)
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


def _cdi_format_findings(
    path: Path, spec: cdispec.Spec, problems: list[SchemaProblem]
) -> Iterator[Finding]:
    if spec.cdi_version != cdispec.CDI_VERSION:
        yield Finding(
            Level.WARNING,
            f"{path}: cdiVersion {spec.cdi_version!r}: fpga-crihook knows the CDI "
            f"{cdispec.CDI_VERSION} format only, so only the hooks were checked",
        )
        return
    for text in _schema_errors(problems, f"CDI {cdispec.CDI_VERSION}"):
        yield Finding(Level.ERROR, f"{path}: {text} (the runtime would ignore the whole file)")


def _cdi_kind_findings(
    path: Path, spec: cdispec.Spec, hooks: list[cdispec.SpecHook]
) -> Iterator[Finding]:
    kind = spec.kind
    if not hooks and kind in cdispec.FPGA_KINDS:
        yield Finding(
            Level.ERROR,
            f"{path}: no hook in this {kind} spec: containers given its devices start "
            "without their accelerator programmed",
        )
    elif not hooks:
        yield Finding(Level.WARNING, f"{path}: kind {kind}: no hook runs fpga-crihook here")


def _cdi_hook_findings(path: Path, spec: cdispec.Spec, hook: cdispec.SpecHook) -> Iterator[Finding]:
    name, executable = hook.hook.hook_name, str(hook.hook.path)
    where = f"{path}: {hook.where}: hook {executable}"
    if name not in EARLY_STAGES:
        yield Finding(
            Level.ERROR,
            f"{where} runs at {name}, neither prestart nor createRuntime: the accelerator "
            "would not be in place when the container starts",
        )
    problem = _program_problem(executable)
    if problem == _MISSING and hook.hook.program == cdi.DROP_IN:
        problem += (
            " (the intel-fpga-crihook image puts the drop-in there as the init container of "
            "Intel's FPGA plugin DaemonSet)"
        )
    if problem:
        yield Finding(Level.ERROR, f"{where} {problem}")
    yield from _cdi_argument_findings(where, spec, hook.hook)


def _cdi_argument_findings(where: str, spec: cdispec.Spec, hook: cdispec.Hook) -> Iterator[Finding]:
    arguments = list(hook.args)
    if hook.program == cdi.DROP_IN:
        return  # the drop-in is createRuntime already: no argument needed
    if not any(command in arguments[1:] for command in HOOK_COMMANDS):
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


def _cdi_device_node_findings(path: Path, spec: cdispec.Spec) -> Iterator[Finding]:
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


def _runs_the_hook(path: Path) -> bool:
    return _runner(path) is not None


def _runner(path: Path) -> cdispec.Spec | str | None:
    """What in the file runs fpga-crihook: the CDI spec (one of whose hooks does), or the
    program a hooks.d file runs; None for neither, and for a file that cannot be read
    (the file checks say why)."""
    try:
        document = cdispec.read_document(path)
    except (OSError, jsondocs.JsonProblem):
        return None
    if cdispec.is_spec(document):
        spec = cdispec.parse(document)
        return spec if cdi.our_hooks(spec) else None
    program = hooksd.program(document)
    return program if program in cdi.OUR_PROGRAMS else None


def _setting_line(setting: InForce) -> str:
    origin = str(setting.origin)
    if setting.origin is Origin.ENVIRONMENT:
        origin = f"environment {setting.env_var}"
    value = "none" if setting.value is None else env_text(setting.value)
    return f"setting {setting.key} = {value} ({origin})"


def _schema_errors(problems: list[SchemaProblem], name: str) -> Iterator[str]:
    """The first few ways a document breaks the format, each in one line of bounded length."""
    for where, message in problems[:MAX_SCHEMA_ERRORS]:
        yield f"breaks the {name} format at {_shortened(where)}: {_shortened(message)}"
    if len(problems) > MAX_SCHEMA_ERRORS:
        yield f"breaks the {name} format in {len(problems) - MAX_SCHEMA_ERRORS} more places"


def _shortened(text: str) -> str:
    """*text* (a message quoting a document's value, which may be huge) cut to a line."""
    return text if len(text) <= MAX_QUOTED else f"{text[: MAX_QUOTED - 3]}..."


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
            what = f"annotation regex {_shortened(repr(regex))}"
            yield from _regex_problems(path, what, regex, matches, anchored=True)
    for command in when.commands:
        what = f"command regex {_shortened(repr(command))}"
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
    if not any(stage in EARLY_STAGES for stage in stages):
        yield Finding(
            Level.ERROR,
            f"{path}: stages {stages} include neither prestart nor createRuntime: "
            "the accelerator would not be in place when the container starts",
        )


def _hook_findings(path: Path, hook: hooksd.Hook) -> Iterator[Finding]:
    if problem := _program_problem(hook.path):
        yield Finding(Level.ERROR, f"{path}: hook.path {hook.path} {problem}")
    arguments = list(hook.args)
    if not any(command in arguments[1:] for command in HOOK_COMMANDS):
        yield Finding(
            Level.ERROR,
            f"{path}: hook.args {arguments} do not name the prestart command "
            '(expected e.g. ["fpga-crihook", "prestart"])',
        )


class _HookTimeout(NamedTuple):
    """How a report names a hook, its ``timeout`` and its ``env``."""

    hook: str
    timeout: str
    env: str


def _cdi_timeout_findings(
    path: Path, hook: cdispec.SpecHook, settings: Settings | None
) -> Iterator[Finding]:
    names = _HookTimeout(f"{path}: {hook.where}: hook {hook.hook.path}", "timeout", "its env")
    return _deadline_findings(names, hook.hook.timeout, _env(hook), settings)


def _deadline_findings(
    names: _HookTimeout, timeout: cdispec.Scalar, env: list[str], settings: Settings | None
) -> Iterator[Finding]:
    """The runtime kills a hook at its ``timeout``: that must come after the hook's deadline."""
    variable = f"{DEADLINE_VARIABLE}="
    given = [entry[len(variable) :] for entry in env if entry.startswith(variable)]
    if given:
        deadline, source = _seconds(given[-1]), f"{names.env} sets {variable}{given[-1]}"
        if deadline is None:
            yield Finding(
                Level.ERROR,
                f"{names.hook}: {source}, which is not a number of seconds above zero "
                f"(at most {MAX_SECONDS:g}): the hook would refuse to run",
            )
            return
    else:
        deadline = settings.deadline.seconds if settings is not None else DEFAULT_DEADLINE
        source = f"{DEADLINE_VARIABLE} is not in {names.env}"
    if _is_number(timeout) and not timeout > deadline:
        yield Finding(
            Level.WARNING,
            f"{names.hook}: {names.timeout} {timeout} s is not above the hook's deadline of "
            f"{deadline:g} s ({source}): the runtime may kill the hook in the middle of "
            "programming; set the timeout above the deadline",
        )


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(text: str) -> float | None:
    """The deadline *text* gives the hook, or ``None`` when the hook would refuse it."""
    try:
        seconds: float = Seconds(above_zero=True).convert(text, None, None)
    except click.BadParameter:
        return None
    return seconds


def _program_problem(executable: str) -> str | None:
    """What keeps the runtime from running *executable* as a hook, or ``None``."""
    if not os.path.isfile(executable):
        return _MISSING
    if not os.access(executable, os.X_OK):
        return "is not executable"
    return None


def _env_findings(path: Path, env: list[str], settings: Settings | None) -> Iterator[Finding]:
    if settings is None:
        return
    for variable, value in (entry.split("=", 1) for entry in env):
        if variable not in NODE_SETTINGS:
            continue
        attribute, option = NODE_SETTINGS[variable]
        checked = getattr(settings, attribute)
        if os.path.abspath(value) != os.path.abspath(checked):
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


def _refused_store_entries(store: Path) -> Iterator[Finding]:
    """An error for each store directory and bitstream file the hook would refuse to program
    from (owner, mode, a symbolic link): once per directory, not again for its files."""
    try:
        os.close(open_directory(store, []))
    except BitstreamError as error:
        yield Finding(Level.ERROR, f"bitstream store: {error}")
        return
    for region in sorted(os.scandir(store), key=lambda entry: entry.name):
        try:
            os.close(open_directory(store, [region.name]))
        except BitstreamError as error:
            if region.is_dir():  # a link to a directory counts; a stray file does not
                yield Finding(Level.ERROR, f"bitstream store: {error}")
            continue
        for name in sorted(os.listdir(region.path)):
            if name.endswith((".gbs", ".aocx")):
                yield from _refused_store_file(store, Path(region.path) / name)


def _refused_store_file(store: Path, path: Path) -> Iterator[Finding]:
    try:
        os.close(open_entry(store, path))
    except BitstreamError as error:
        yield Finding(Level.ERROR, f"bitstream store: {error}")


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
    yield from _refused_store_entries(store)
    for card in cards:
        region = card.fme.interface.value if card.fme is not None else None
        if region is not None and not (store / region).is_dir():
            yield Finding(
                Level.WARNING,
                f"bitstream store {store} has nothing for region {region} "
                f"({card.driver.label} card {card.name})",
            )


class _Engines(NamedTuple):
    """Where the engines' configs are, as the options name them (None: the default)."""

    crio_config: Path | None
    crio_config_dir: Path | None
    containerd_config: Path | None


def _report(
    given: SettingsInForce,
    files: list[Path],
    hooks_dirs: list[Path],
    cdi_dirs: list[Path],
    configs: _Engines,
) -> list[Finding]:
    """Every finding, in the report's order: the settings, the engines, the files, the node."""
    from fpga_crihook import engineconfig  # noqa: PLC0415
    from fpga_crihook.commands.check import engines  # noqa: PLC0415 (it imports this module)

    findings = config_findings(given)
    crio = engineconfig.read_crio(
        configs.crio_config or engineconfig.CRIO_CONFIG,
        configs.crio_config_dir or engineconfig.CRIO_CONFIG_DIR,
    )
    findings += engines.runtime_findings(crio, given)
    containerd = engineconfig.read_containerd(
        configs.containerd_config or engineconfig.CONTAINERD_CONFIG
    )
    if files:
        findings += engines.engine_findings(crio, containerd, files)
        return findings + run_checks(files, given.settings, installed=files)
    searched_hooks = hooks_dirs or engines.hooks_dirs_to_search(crio)
    searched_specs = cdi_dirs or engines.cdi_dirs_to_search(crio, containerd)
    installed = installed_files(searched_hooks, searched_specs)
    findings += installed_findings(installed, [*searched_hooks, *searched_specs])
    findings += engines.engine_findings(crio, containerd, installed)
    return findings + run_checks([shipped_hooks_file(), *installed], given.settings, installed)


@click.command("check")
@click.option(
    "--hooks-dir",
    "hooks_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A hooks.d directory the runtime reads, searched when no FILE is given "
    "(default: /usr/share/containers/oci/hooks.d, /etc/containers/oci/hooks.d).",
)
@click.option(
    "--cdi-spec-dir",
    "cdi_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A CDI spec directory, searched when no FILE is given (default: /etc/cdi, /var/run/cdi).",
)
@click.option(
    "--crio-config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="CRI-O's config file, read for the directories CRI-O reads (hooks_dir, "
    "cdi_spec_dirs; default: /etc/crio/crio.conf).",
)
@click.option(
    "--crio-config-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="CRI-O's drop-in config directory, read after --crio-config as CRI-O does "
    "(default: /etc/crio/crio.conf.d).",
)
@click.option(
    "--containerd-config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="containerd's config file, with its imports: CDI on or off, and its spec "
    "directories (default: /etc/containerd/config.toml).",
)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
def check(
    given: SettingsInForce,
    hooks_dirs: tuple[Path, ...],
    cdi_dirs: tuple[Path, ...],
    crio_config: Path | None,
    crio_config_dir: Path | None,
    containerd_config: Path | None,
    files: tuple[Path, ...],
) -> None:
    """Validate hooks.d files, CDI specs and this node's set-up; exit 1 on any error.

    First the node config file and every setting in force, with where it
    came from. Each hooks.d file is checked against the hooks.d 1.0.0 format
    and for what fpga-crihook needs; each CDI spec for the hooks that run
    fpga-crihook; a hooks.d file and a CDI spec that would both run it for
    one container are an error. Without FILE: the hooks.d file this package
    ships and every file in the runtimes' hooks.d and CDI directories that
    runs fpga-crihook, CRI-O's own hooks_dir and the engines' CDI spec
    directories included. Where CRI-O's or containerd's config is on the node:
    the directories each reads, containerd's CDI switch, and an error for a
    hooks.d file or CDI spec no engine reads. Then the node: FPGA drivers and
    cards, FME device nodes, the bitstream store. One line per finding: "ok:",
    "warning:" or "error:".

    \b
    Example:
        fpga-crihook check /etc/containers/oci/hooks.d/intel-fpga-crihook.json
        fpga-crihook check /var/run/cdi/intel.cdi.k8s.io-fpga.json
        fpga-crihook check
    """
    configs = _Engines(crio_config, crio_config_dir, containerd_config)
    findings = _report(given, list(files), list(hooks_dirs), list(cdi_dirs), configs)
    output.echo("\n".join(str(finding) for finding in findings))
    if has_errors(findings):
        raise SystemExit(ExitStatus.NOT_CLASSIFIED)  # the operator commands' failure status
