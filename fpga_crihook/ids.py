"""Interface and AFU IDs: canonical form and health (docs/design.md#ids)."""

import re

ID_HEX_DIGITS = 32

# A card whose firmware crashed reports every property as all ones.
UNHEALTHY_ID = "f" * ID_HEX_DIGITS

_CANONICAL = re.compile(r"[0-9a-f]{32}")


class InvalidIdError(ValueError):
    """Raised by :func:`canonical_id`; callers wrap it with the name of the source."""


def canonical_id(text: str) -> str:
    """Return *text* as 32 lowercase hex digits, without dashes.

    Upper case and dashes (UUID style) are accepted; surrounding white space,
    any other character or another number of digits is not.
    """
    candidate = text.replace("-", "").lower()
    if not _CANONICAL.fullmatch(candidate) or not text.isascii():
        raise InvalidIdError(f"{_shorten(text)!r} is not a 32-hex-digit ID")
    return candidate


def requested_id(text: str) -> str:
    """:func:`canonical_id` for an ID someone asks for: the all-ones ID is refused too."""
    identifier = canonical_id(text)
    if is_unhealthy(identifier):
        raise InvalidIdError(
            "the all-ones ID is not a valid request (it is what crashed cards report)"
        )
    return identifier


def is_unhealthy(identifier: str) -> bool:
    """True when a device reported the all-ones ID of crashed firmware."""
    return identifier == UNHEALTHY_ID


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
