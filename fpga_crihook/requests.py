"""Accelerator requests from the container's ``FPGA_REGION_N`` / ``FPGA_AFU_N`` variables.

Rules for ``process.env`` (the values come from users, through the pod spec):

- Only names starting with ``FPGA_REGION_`` or ``FPGA_AFU_`` followed by a
  non-empty suffix are read; a suffix longer than 32 characters is an error
  (suffixes end up in log lines and errors). Every other entry, malformed or
  not, is ignored and never logged: it may hold a secret.
- An entry naming one of those variables without ``=`` is an error, and so is
  the same variable given twice, even with equal values: which of two values
  a process sees depends on the runtime, and the hook must not guess.
- ``FPGA_REGION_<suffix>`` pairs with ``FPGA_AFU_<suffix>``; each needs the
  other. Both values must be IDs in canonical form after removing dashes and
  lowering case (docs/design.md#ids); all-ones IDs are refused, and so is an
  empty value or one with white space, ``/`` or ``..`` in it: values never
  become paths unless they are exactly 32 hex digits.
- Error messages may show the hook's own variables (names and values), never
  any other entry.
"""

from collections.abc import Iterable
from typing import NamedTuple

from fpga_crihook.errors import InputError
from fpga_crihook.ids import InvalidIdError, requested_id

REGION_PREFIX = "FPGA_REGION_"
AFU_PREFIX = "FPGA_AFU_"
MAX_REQUESTS = 64
MAX_SUFFIX_CHARS = 32


class Request(NamedTuple):
    """One accelerator the container needs on one of its ports."""

    name: str  # the suffix N shared by FPGA_REGION_N and FPGA_AFU_N
    interface_id: str
    afu_id: str


def parse_requests(env: Iterable[str], required: bool = True) -> list[Request]:
    """Pair the FPGA variables of *env* into requests, ordered by suffix.

    With *required* false, an *env* without any of them gives no requests
    instead of an error.
    """
    regions, afus = _fpga_variables(env)
    unpaired = sorted((regions.keys() ^ afus.keys()), key=_suffix_order)
    if unpaired:
        suffix = unpaired[0]
        present, missing = (
            (REGION_PREFIX, AFU_PREFIX) if suffix in regions else (AFU_PREFIX, REGION_PREFIX)
        )
        shown = printable(suffix)
        raise InputError(
            f"{present}{shown} is set but {missing}{shown} is not: "
            "every region needs its AFU and the reverse"
        )
    if not regions:
        if not required:
            return []
        raise InputError(
            f"the container has the FPGA region annotation but no "
            f"{REGION_PREFIX}N / {AFU_PREFIX}N variables"
        )
    if len(regions) > MAX_REQUESTS:
        raise InputError(
            f"the container asks for {len(regions)} accelerators; "
            f"at most {MAX_REQUESTS} are supported"
        )
    return [
        Request(
            suffix,
            _parse_id(REGION_PREFIX + suffix, regions[suffix]),
            _parse_id(AFU_PREFIX + suffix, afus[suffix]),
        )
        for suffix in sorted(regions, key=_suffix_order)
    ]


def names_fpga_variables(env: Iterable[str]) -> bool:
    """True when *env* has an ``FPGA_REGION_<N>`` or ``FPGA_AFU_<N>`` entry, well formed or not:
    such a container asks for an accelerator, and :func:`parse_requests` says what is wrong."""
    return any(
        name != prefix and name.startswith(prefix)
        for name in (entry.partition("=")[0] for entry in env)
        for prefix in (REGION_PREFIX, AFU_PREFIX)
    )


def _fpga_variables(env: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    regions: dict[str, str] = {}
    afus: dict[str, str] = {}
    for entry in env:
        name, separator, value = entry.partition("=")
        for prefix, found in ((REGION_PREFIX, regions), (AFU_PREFIX, afus)):
            suffix = name.removeprefix(prefix)
            if suffix == name or not suffix:
                continue
            if len(suffix) > MAX_SUFFIX_CHARS:
                raise InputError(
                    f"the container environment has {printable(prefix + suffix[:16])}... "
                    f"whose suffix after {prefix} is {len(suffix)} characters long: "
                    f"at most {MAX_SUFFIX_CHARS} are accepted"
                )
            if not separator:
                raise InputError(
                    f"the container environment has {printable(name)} without '=' and a value"
                )
            if suffix in found:
                raise InputError(
                    f"{printable(name)} is set more than once in the container environment"
                )
            found[suffix] = value
    return regions, afus


def _parse_id(variable: str, value: str) -> str:
    try:
        return requested_id(value)
    except InvalidIdError as error:
        raise InputError(f"{printable(variable)}: {error}") from None


def _suffix_order(suffix: str) -> tuple[int, int, str]:
    """Numeric suffixes first in numeric order (2 before 10), then the rest."""
    numeric = suffix.isascii() and suffix.isdecimal() and len(suffix) <= 18
    return (0, int(suffix), suffix) if numeric else (1, 0, suffix)


def printable(name: str, limit: int = 80) -> str:
    """*name* shortened and with control and non-ASCII characters escaped, for one-line messages."""
    shown = name if len(name) <= limit else name[:limit] + "..."
    return ascii(shown)[1:-1]
