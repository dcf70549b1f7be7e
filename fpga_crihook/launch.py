"""The console scripts' entry points: the process is short-lived, so it skips cyclic GC.

Every container start on the node runs the hook, and most of its time goes
into importing click, structlog and pydantic, which allocate hundreds of
thousands of objects; Python's cyclic garbage collector walks them again and
again while they load (``make bench``: about 15 ms of a start). The hook
lives for well under its deadline and frees its large buffers explicitly, so
it turns the collector off before importing anything. Reference counting
still frees every object not caught in a cycle; the rest goes with the
process. Only the console scripts do this: importing the package never
changes the interpreter's collector.
"""

import gc


def main() -> None:
    """``fpga-crihook``."""
    gc.disable()
    from fpga_crihook import cli  # noqa: PLC0415 (after the collector is off)

    cli.main()


def intel_drop_in() -> None:
    """``intel-fpga-crihook``: Intel's CDI hook path, ``fpga-crihook createRuntime --intel-cdi``."""
    gc.disable()
    from fpga_crihook import cli  # noqa: PLC0415 (after the collector is off)

    cli.intel_drop_in()
