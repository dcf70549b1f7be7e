"""The console scripts' entry points: a short-lived process that runs as root.

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

Only the console scripts do either: importing the package never changes
the interpreter's collector or the environment.
"""

import gc
import os

# pydantic/plugin/_loader.py: "__all__", "1" or "true" turn every plugin off.
_NO_PYDANTIC_PLUGINS = ("PYDANTIC_DISABLE_PLUGINS", "__all__")


def main() -> None:
    """``fpga-crihook``."""
    gc.disable()
    os.environ.setdefault(*_NO_PYDANTIC_PLUGINS)
    from fpga_crihook import cli  # noqa: PLC0415 (after the collector is off)

    cli.main()


def intel_drop_in() -> None:
    """``intel-fpga-crihook``: Intel's CDI hook path, ``fpga-crihook createRuntime --intel-cdi``."""
    gc.disable()
    os.environ.setdefault(*_NO_PYDANTIC_PLUGINS)
    from fpga_crihook import cli  # noqa: PLC0415 (after the collector is off)

    cli.intel_drop_in()
