"""ids: the canonical form of interface and AFU IDs."""

import pytest

from fpga_crihook.ids import InvalidIdError, canonical_id, is_unhealthy, requested_id


@pytest.mark.parametrize(
    "text",
    [
        "ce48969398f05f33946d560708be108a",
        "CE48969398F05F33946D560708BE108A",
        "ce489693-98f0-5f33-946d-560708be108a",
    ],
)
def test_dashes_and_upper_case_become_canonical(text: str) -> None:
    assert canonical_id(text) == "ce48969398f05f33946d560708be108a"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ce48969398f05f33946d560708be108a",
        "ce48969398f05f33946d560708be108a\n",
        "ce48969398f05f33946d560708be108",
        "ce48969398f05f33946d560708be108aa",
        "ge48969398f05f33946d560708be108a",
        "../../etc/passwd",
        "ce48969398f05f33946d560708be10/a",
        "\uff43e48969398f05f33946d560708be108a",
    ],
)
def test_anything_else_is_invalid(text: str) -> None:
    with pytest.raises(InvalidIdError, match="is not a 32-hex-digit ID"):
        canonical_id(text)


def test_all_ones_means_unhealthy() -> None:
    assert is_unhealthy("f" * 32)
    assert not is_unhealthy("f" * 31 + "e")


def test_a_requested_id_must_not_be_all_ones() -> None:
    assert requested_id("CE489693-98F0-5F33-946D-560708BE108A") == (
        "ce48969398f05f33946d560708be108a"
    )
    with pytest.raises(InvalidIdError, match="all-ones ID is not a valid request"):
        requested_id("F" * 32)
