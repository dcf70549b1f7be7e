"""What a hooks.d file and a CDI spec both say of the hook they run.

The runtime runs the hook's program, which must be there and executable, at
a stage: only ``prestart`` and ``createRuntime`` come before the container's
process starts. The hook's ``env`` is all the environment it gets: one that
points the hook at another sysfs, devfs or store than ``check`` looked at is
a warning, as is one that asks for the events on stderr, which runc pastes
into a failed pod's error. The runtime kills the hook at its ``timeout``,
which must come after the hook's own deadline, else the hook may be killed in
the middle of programming.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, TypeGuard

import click

from fpga_crihook.commands.check.findings import Finding, Level
from fpga_crihook.deadline import DEADLINE_VARIABLE, DEFAULT_DEADLINE
from fpga_crihook.settings import ASKING_FOR_EVENTS, Settings, declared
from fpga_crihook.settingtypes import MAX_SECONDS, Seconds

MISSING = "does not exist"  # a hook program that is not there
EARLY_STAGES = ("prestart", "createRuntime")  # run before the container's process
HOOK_COMMANDS = EARLY_STAGES  # the hook's commands are named after the stages that run them
# Settings the node checks use, by the variable a hooks.d ``env`` sets them with.
NODE_SETTINGS = {
    setting.env_var: (setting.name, setting.option)
    for setting in map(declared, ("sysfs", "devfs", "bitstreams"))
}
# Setting either asks for the events on stderr (see logs.stderr_format).
EVENTS_ON_STDERR = tuple(setting.env_var for setting in ASKING_FOR_EVENTS)


class HookNames(NamedTuple):
    """How a report names a hook, its ``timeout`` and its ``env``."""

    hook: str
    timeout: str
    env: str


def program_problem(executable: str) -> str | None:
    """What keeps the runtime from running *executable* as a hook, or ``None``."""
    if not os.path.isfile(executable):
        return MISSING
    if not os.access(executable, os.X_OK):
        return "is not executable"
    return None


def names_a_hook_command(arguments: list[str]) -> bool:
    """True when *arguments* (argv[0] first) name one of the hook's commands."""
    return any(command in arguments[1:] for command in HOOK_COMMANDS)


def deadline_findings(
    names: HookNames, timeout: object, env: list[str], settings: Settings | None
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


def env_findings(path: Path, env: list[str], settings: Settings | None) -> Iterator[Finding]:
    """A warning for each node setting *env* gives the hook other than the one checked."""
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


def stderr_findings(path: Path, env: list[str]) -> Iterator[Finding]:
    """A warning for each variable in *env* that puts the hook's events on stderr."""
    for variable in sorted({entry.split("=", 1)[0] for entry in env} & set(EVENTS_ON_STDERR)):
        yield Finding(
            Level.WARNING,
            f"{path}: hook.env sets {variable}, which puts the hook's JSON events on "
            "stderr too, and runc pastes all of stderr into a failed pod's error: "
            "leave it out (the journal and the log file get the events without it)",
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
