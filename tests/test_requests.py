"""requests: pairing FPGA_REGION_N with FPGA_AFU_N."""

import pytest

from fpga_crihook.errors import InputError
from fpga_crihook.requests import Request, parse_requests

REGION = "ce48969398f05f33946d560708be108a"
AFU = "f7df405cbd7acf7222f144b0b93acd18"
OTHER_AFU = "d8424dc4a4a3c413f89e433683f9040b"


def test_pairs_are_matched_by_suffix_and_ordered_numerically() -> None:
    env = [
        f"FPGA_AFU_10={OTHER_AFU}",
        "PATH=/bin",
        f"FPGA_REGION_2={REGION}",
        f"FPGA_REGION_10={REGION}",
        f"FPGA_AFU_2={AFU}",
    ]
    assert parse_requests(env) == [
        Request("2", REGION, AFU),
        Request("10", REGION, OTHER_AFU),
    ]


def test_ids_are_canonicalised() -> None:
    env = ["FPGA_REGION_1=CE489693-98F0-5F33-946D-560708BE108A", f"FPGA_AFU_1={AFU.upper()}"]
    assert parse_requests(env) == [Request("1", REGION, AFU)]


def test_non_numeric_suffixes_pair_too() -> None:
    env = [f"FPGA_REGION_main={REGION}", f"FPGA_AFU_main={AFU}"]
    assert parse_requests(env) == [Request("main", REGION, AFU)]


def test_other_malformed_entries_are_ignored() -> None:
    env = ["JUSTANAME", "=", "", "FPGA_REGION_=x", f"FPGA_REGION_1={REGION}", f"FPGA_AFU_1={AFU}"]
    assert parse_requests(env) == [Request("1", REGION, AFU)]


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ([], "no FPGA_REGION_N / FPGA_AFU_N variables"),
        (["PATH=/bin"], "no FPGA_REGION_N"),
        ([f"FPGA_REGION_1={REGION}"], "FPGA_REGION_1 is set but FPGA_AFU_1 is not"),
        ([f"FPGA_AFU_3={AFU}"], "FPGA_AFU_3 is set but FPGA_REGION_3 is not"),
        ([f"FPGA_REGION_1={REGION}", "FPGA_AFU_1=../../etc/x"], "FPGA_AFU_1: '../../etc/x'"),
        ([f"FPGA_REGION_1={REGION}", "FPGA_AFU_1="], "FPGA_AFU_1: '' is not"),
        ([f"FPGA_REGION_1={REGION}", "FPGA_AFU_1"], "FPGA_AFU_1 without '='"),
        ([f"FPGA_REGION_1={REGION}", f"FPGA_AFU_1={AFU}", f"FPGA_AFU_1={AFU}"], "more than once"),
        ([f"FPGA_REGION_1={REGION}", "FPGA_AFU_1=" + "f" * 32], "all-ones ID"),
        ([f"FPGA_REGION_1={'F' * 32}", f"FPGA_AFU_1={AFU}"], "FPGA_REGION_1: the all-ones"),
    ],
)
def test_bad_requests_name_the_variable(env: list[str], words: str) -> None:
    with pytest.raises(InputError, match=words.replace("(", r"\(")):
        parse_requests(env)


def test_too_many_requests_are_refused() -> None:
    env = [f"FPGA_REGION_{n}={REGION}" for n in range(65)]
    env += [f"FPGA_AFU_{n}={AFU}" for n in range(65)]
    with pytest.raises(InputError, match="at most 64"):
        parse_requests(env)


def test_a_suffix_of_32_characters_is_the_longest_accepted() -> None:
    longest = "9" * 32
    assert parse_requests([f"FPGA_REGION_{longest}={REGION}", f"FPGA_AFU_{longest}={AFU}"])

    huge = "9" * 5000
    with pytest.raises(InputError) as caught:
        parse_requests([f"FPGA_REGION_{huge}={REGION}", f"FPGA_AFU_{huge}={AFU}"])

    message = str(caught.value)
    assert message.endswith(
        "whose suffix after FPGA_REGION_ is 5000 characters long: at most 32 are accepted"
    )
    assert len(message) < 200
