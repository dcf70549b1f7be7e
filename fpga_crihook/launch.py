"""The console scripts' entry points: a short-lived process that runs as root, in an
environment that is not its own.

Every container start on the node runs the hook, and most of its time goes
into importing click, structlog and pydantic, which allocate hundreds of
thousands of objects; Python's cyclic garbage collector walks them again and
again while they load (``make bench``: about 10 ms of a start). The hook
lives for well under its deadline and frees its large buffers explicitly, so
it turns the collector off before importing anything. Reference counting
still frees every object not caught in a cycle; the rest goes with the
process.

pydantic loads every plugin that any installed distribution offers through
the ``pydantic`` entry point group, the first time a model is built: code
the node never chose to run as root, and a scan of every distribution's
metadata on each start. The console scripts turn that off
(``PYDANTIC_DISABLE_PLUGINS``) before pydantic is imported, unless the
environment sets the variable itself.

runc gives a hook only its hooks.d ``env``; crun gives a hook without one its
own environment, so the interpreter's ``PYTHON*`` variables may be set. The
payload's launchers run Python isolated (``-I``, written by
``deployments/build-payload.sh``), which ignores them all. For an install
without it, the two the hook's outcome depends on are pinned here: the exit
status (with ``PYTHONINSPECT`` the interpreter would print a traceback and
wait for a prompt instead, and exit 1 at stdin's end) and the longest integer
the JSON it reads may hold (``PYTHONINTMAXSTRDIGITS``).

Only the console scripts do these: importing the package never changes the
interpreter or the environment.
"""

import contextlib
import gc
import os
import sys
from collections.abc import Callable
from typing import NoReturn

# pydantic/plugin/_loader.py: "__all__", "1" or "true" turn every plugin off.
_NO_PYDANTIC_PLUGINS = ("PYDANTIC_DISABLE_PLUGINS", "__all__")


def main() -> None:
    """``fpga-crihook``."""
    _prepare_process()
    from fpga_crihook import cli  # noqa: PLC0415 (after the process is prepared)

    _exit_with(cli.main)


def intel_drop_in() -> None:
    """``intel-fpga-crihook``: Intel's CDI hook path, ``fpga-crihook createRuntime --intel-cdi``."""
    _prepare_process()
    from fpga_crihook import cli  # noqa: PLC0415 (after the process is prepared)

    _exit_with(cli.intel_drop_in)


def _prepare_process() -> None:
    gc.disable()
    os.environ.setdefault(*_NO_PYDANTIC_PLUGINS)
    sys.set_int_max_str_digits(sys.int_info.default_max_str_digits)  # not the environment's


def _exit_with(entry: Callable[[], object]) -> NoReturn:
    """Run *entry* and end the process with its exit status, skipping the interpreter's own
    shutdown (after flushing stdout): nothing the environment sets runs after the hook."""
    try:
        entry()
        status = 0
    except SystemExit as done:  # the CLI always exits with a number
        status = done.code if isinstance(done.code, int) else int(done.code is not None)
    for stream in (sys.stdout, sys.stderr):  # None when the process started without it
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to add
            if stream is not None:
                stream.flush()
    os._exit(status)
