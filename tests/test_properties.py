"""Properties of the parsers that read untrusted input.

Whatever bytes or strings come in, the GBS parser, the container-environment
parser, the OCI document parsers and ID canonicalisation either return a
well-formed value or raise the project's own error (a ``HookError``, or
``InvalidIdError`` for bare IDs); valid inputs come back out unchanged.
"""

import contextlib
import json
import re
import struct
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from helpers import AFU_2, REGION_A
from hypothesis import given
from hypothesis import strategies as st
from simnode import GBS_MAGIC, dashed, gbs_bytes

from fpga_crihook.bitstream import parse_gbs
from fpga_crihook.errors import HookError, InputError
from fpga_crihook.ids import InvalidIdError, canonical_id
from fpga_crihook.oci import parse_config, parse_state
from fpga_crihook.requests import AFU_PREFIX, REGION_PREFIX, parse_requests

# Modest example counts keep the suite fast; no example database is written.
fast = hypothesis.settings(max_examples=200, database=None, deadline=None)

SOURCE = Path("/store/region/afu.gbs")
CANONICAL = re.compile(r"[0-9a-f]{32}")

ids = st.binary(min_size=16, max_size=16).map(bytes.hex).filter(lambda i: i != "f" * 32)


@st.composite
def spelled(draw: st.DrawFn, identifier: str) -> str:
    """*identifier* as users and metadata may write it: any case, with or without dashes."""
    text = draw(st.sampled_from([identifier, dashed(identifier)]))
    upper = draw(st.integers(min_value=0, max_value=2 ** len(text) - 1))  # a bit per character
    return "".join(c.upper() if upper >> n & 1 else c for n, c in enumerate(text))


def _spelled_id() -> st.SearchStrategy[tuple[str, str]]:
    return ids.flatmap(lambda i: st.tuples(st.just(i), spelled(i)))


# --- ids.canonical_id ---


@fast
@given(st.text())
def test_canonical_id_of_any_text_is_32_lowercase_hex_digits_or_invalid_id_error(
    text: str,
) -> None:
    try:
        result = canonical_id(text)
    except InvalidIdError:
        return
    assert CANONICAL.fullmatch(result)
    assert canonical_id(result) == result


@fast
@given(_spelled_id())
def test_canonical_id_undoes_dashes_and_case(pair: tuple[str, str]) -> None:
    identifier, text = pair
    assert canonical_id(text) == identifier


@fast
@given(
    ids,
    st.integers(min_value=0, max_value=32),
    st.sampled_from([" ", "\n", "/", ".", "..", "g", "\x00", "\uff10", "0"]),
)
def test_canonical_id_refuses_an_id_with_anything_inserted(
    identifier: str, where: int, inserted: str
) -> None:
    with pytest.raises(InvalidIdError):
        canonical_id(identifier[:where] + inserted + identifier[where:])


# --- bitstream.parse_gbs ---

HUGE_INT = b'{"version": ' + b"1" * 5000 + b"}"  # more digits than Python converts


def _parse(data: bytes) -> None:
    """Parse *data*; a success must hand out a raw part that ends the file."""
    try:
        bitstream = parse_gbs(memoryview(bytearray(data)), SOURCE)
    except HookError:
        return
    raw = bytes(bitstream.raw)
    assert raw
    assert data.endswith(raw)
    assert len(data) == 20 + bitstream.metadata_size + len(raw)


@fast
@given(st.binary(max_size=4096))
def test_parse_gbs_of_arbitrary_bytes_raises_only_hook_errors(data: bytes) -> None:
    _parse(data)


@fast
@given(st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=4096))
@hypothesis.example(length=len(HUGE_INT), rest=HUGE_INT + b"raw")
@hypothesis.example(length=20000, rest=b"[" * 10000 + b"]" * 10000 + b"raw")
def test_parse_gbs_of_any_header_length_raises_only_hook_errors(length: int, rest: bytes) -> None:
    _parse(GBS_MAGIC + struct.pack("<I", length) + rest)


VALID_GBS = gbs_bytes(REGION_A, AFU_2, raw=b"raw bitstream" * 20)


@st.composite
def mutated_gbs(draw: st.DrawFn) -> bytes:
    """A valid GBS file with a few bytes overwritten, cut off or inserted."""
    data = bytearray(VALID_GBS)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        where = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["overwrite", "truncate", "insert"]))
        if action == "overwrite" and where < len(data):
            data[where] = draw(st.integers(min_value=0, max_value=255))
        elif action == "truncate":
            del data[where:]
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@fast
@given(mutated_gbs())
def test_parse_gbs_of_a_mutated_valid_file_raises_only_hook_errors(data: bytes) -> None:
    _parse(data)


@fast
@given(
    _spelled_id(),
    _spelled_id(),
    st.text(min_size=1, max_size=40),
    st.binary(min_size=1, max_size=2048),
    st.integers(min_value=1, max_value=2**40),
)
def test_parse_gbs_returns_what_the_packager_wrote(
    interface: tuple[str, str],
    afu: tuple[str, str],
    name: str,
    raw: bytes,
    version: int,
) -> None:
    metadata: dict[str, Any] = {
        "version": version,
        "afu-image": {
            "interface-uuid": interface[1],
            "magic-no": 488605312,
            "power": 0,
            "accelerator-clusters": [
                {"name": name, "total-contexts": 1, "accelerator-type-uuid": afu[1]}
            ],
        },
    }

    bitstream = parse_gbs(memoryview(bytearray(gbs_bytes(metadata=metadata, raw=raw))), SOURCE)

    assert (bitstream.interface_id, bitstream.afu_id) == (interface[0], afu[0])
    assert bitstream.metadata.names == (name,)
    assert bytes(bitstream.raw) == raw
    assert bitstream.metadata_size == len(json.dumps(metadata).encode())


# --- requests.parse_requests ---

fpga_names = st.sampled_from([REGION_PREFIX, AFU_PREFIX]).flatmap(
    lambda prefix: st.text(max_size=6).map(lambda suffix: prefix + suffix)
)
env_entries = st.one_of(
    st.text(max_size=40),
    st.tuples(fpga_names, st.sampled_from(["", "="]), st.text(max_size=40)).map("".join),
    st.tuples(fpga_names, ids.flatmap(spelled)).map(lambda pair: f"{pair[0]}={pair[1]}"),
)


@fast
@given(st.lists(env_entries, max_size=12))
def test_parse_requests_of_any_env_returns_canonical_requests_or_input_error(
    env: list[str],
) -> None:
    try:
        requests = parse_requests(env)
    except InputError:
        return
    assert requests
    for request in requests:
        assert CANONICAL.fullmatch(request.interface_id)
        assert CANONICAL.fullmatch(request.afu_id)
        assert f"{REGION_PREFIX}{request.name}" in "\n".join(env)


suffixes = st.text(
    alphabet=st.characters(blacklist_characters="=", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=5,
)
noise = st.text(max_size=30).filter(
    lambda entry: not entry.startswith(("FPGA_REGION_", "FPGA_AFU_"))
)


@st.composite
def valid_envs(draw: st.DrawFn) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """A container environment with FPGA requests among other variables, and its meaning."""
    wanted = draw(st.dictionaries(suffixes, st.tuples(ids, ids), min_size=1, max_size=5))
    env = draw(st.lists(noise, max_size=6))
    for suffix, (region, afu) in wanted.items():
        env.append(f"{REGION_PREFIX}{suffix}={draw(spelled(region))}")
        env.append(f"{AFU_PREFIX}{suffix}={draw(spelled(afu))}")
    return draw(st.permutations(env)), wanted


@fast
@given(valid_envs())
def test_parse_requests_finds_every_pair_whatever_the_order_and_noise(
    case: tuple[list[str], dict[str, tuple[str, str]]],
) -> None:
    env, wanted = case

    requests = parse_requests(env)

    assert {r.name: (r.interface_id, r.afu_id) for r in requests} == wanted


@fast
@given(valid_envs(), st.data())
def test_parse_requests_refuses_any_fpga_variable_given_twice(
    case: tuple[list[str], dict[str, tuple[str, str]]], data: st.DataObject
) -> None:
    env, _wanted = case
    fpga = [entry for entry in env if entry.startswith(("FPGA_REGION_", "FPGA_AFU_"))]
    again = data.draw(st.sampled_from(fpga))

    with pytest.raises(InputError, match="more than once"):
        parse_requests([*env, again])


@fast
@given(valid_envs(), st.data())
def test_parse_requests_refuses_an_fpga_variable_without_a_value(
    case: tuple[list[str], dict[str, tuple[str, str]]], data: st.DataObject
) -> None:
    env, _wanted = case
    fpga = [entry for entry in env if entry.startswith(("FPGA_REGION_", "FPGA_AFU_"))]
    entry = data.draw(st.sampled_from(fpga))
    bare = entry.partition("=")[0]

    with pytest.raises(InputError, match="without '='"):
        parse_requests([bare if item == entry else item for item in env])


# --- oci.parse_state / oci.parse_config ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
oci_documents = st.fixed_dictionaries(
    {},
    optional={
        "bundle": json_values | st.just("/"),
        "annotations": json_values,
        "process": json_values | st.fixed_dictionaries({}, optional={"env": json_values}),
        "linux": json_values | st.fixed_dictionaries({}, optional={"devices": json_values}),
    },
)


@fast
@given(st.one_of(json_values, oci_documents).map(json.dumps).map(str.encode) | st.binary())
@hypothesis.example(raw=b'{"bundle": "/", "pid": ' + b"9" * 5000 + b"}")  # too long an int
@hypothesis.example(raw=b'{"process": {"env": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}")
def test_oci_parsers_of_any_input_raise_only_input_errors(raw: bytes) -> None:
    for parse in (parse_state, parse_config):
        with contextlib.suppress(InputError):
            parse(raw)
