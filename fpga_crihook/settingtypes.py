"""The click parameter types of the settings' values, bounded as the system and the hook need.

A value is read by its type whether it was given as an option, an
environment variable or a key of the node config file, so a bad value is
refused in the same words wherever it came from.
"""

import math
import os
from pathlib import Path
from typing import Any

import click

# No container start waits a day; and a runtime's hook timeout, whole seconds above the
# deadline, stays a small integer.
MAX_SECONDS = 86_400.0
_PATH_MAX, _NAME_MAX = 4095, 255  # bytes: Linux's PATH_MAX (less its NUL) and NAME_MAX


class PathSetting(click.Path):
    """The type of every path setting: a ``Path`` the system can take, refused in one line
    naming the option or variable when no system call could (a NUL character, a name
    longer than Linux's 255 bytes, a path longer than its 4095).

    Whether the path can be read is for the code that uses it to say: click's
    check would refuse every command of a user who cannot read root's
    ``0700`` lock directory, which only the hook uses.
    """

    def __init__(self, *, dir_okay: bool = True) -> None:
        super().__init__(path_type=Path, dir_okay=dir_okay, readable=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = os.fsencode(value)
        if b"\0" in text:
            self.fail("a path cannot hold a NUL character", param, ctx)
        if len(text) > _PATH_MAX or any(len(name) > _NAME_MAX for name in text.split(b"/")):
            self.fail(
                f"{len(text)} bytes is longer than a path can be ({_PATH_MAX} bytes, "
                f"{_NAME_MAX} a name)",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


class Seconds(click.FloatRange):
    """The type of every time setting: a finite number of seconds, 0 (or above 0) to a day.

    click's FloatRange alone lets ``nan`` through (it compares false with both
    bounds) and raises OverflowError on an integer too large for a float (a
    TOML file can hold one): both are refused here, as click refuses any bad
    value, in one line naming the option or variable.
    """

    name = "number of seconds"

    def __init__(self, *, above_zero: bool = False) -> None:
        super().__init__(min=0, max=MAX_SECONDS, min_open=above_zero)

    def get_metavar(self, *args: Any, **kwargs: Any) -> str:
        """``SECONDS`` in ``--help`` (click's signature differs between its versions)."""
        return "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            seconds = super().convert(value, param, ctx)
        except OverflowError:
            self.fail(f"the number is too large: at most {MAX_SECONDS:g} seconds", param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds
