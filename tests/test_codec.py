"""Canonical bytes: round trips (hypothesis), determinism across processes, and the
refusal of foreign or future records."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitprov import codec
from gitprov.errors import DataError, FormatVersionError
from gitprov.model import (
    FORMAT_VERSION,
    CodeVersion,
    CommitCapture,
    NoteLine,
    RunLink,
    RunRecord,
    SchemaPin,
)

PIN = SchemaPin(lexicon="sha256:" + "ab" * 32, version=1)

# keys starting with "$" are reserved for the codec's own tags ({"$float": ...})
keys = st.text(min_size=0, max_size=12).filter(lambda k: not k.startswith("$"))
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, 5e-324])
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def same(a, b) -> bool:
    """Structural equality where NaN equals NaN and -0.0 differs from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        return repr(a) == repr(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def run_record(params: dict) -> RunRecord:
    return RunRecord(
        created="2026-01-01T00:00:00.000000Z",
        nonce="n",
        name="train ✓",
        code=CodeVersion(commit="a" * 40),
        params=params,
        schema=PIN,
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, json_values, max_size=6))
def test_record_round_trip_is_byte_identical(params: dict) -> None:
    record = run_record(params)
    data = codec.encode(record)
    decoded = codec.decode(data, RunRecord)
    assert same(decoded.params, params)
    assert codec.encode(decoded) == data
    json.loads(data)  # standard JSON: no NaN/Infinity literals
    assert b"NaN" not in data.replace(b'"NaN"', b"") and b"Infinity" not in data.replace(b'"Infinity"', b"").replace(b'"-Infinity"', b"")


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_plain_values_round_trip(value) -> None:
    wrapped = {"format_version": FORMAT_VERSION, "value": value}
    data = codec.encode(wrapped)
    decoded = codec.decode(data, dict)
    assert same(decoded, wrapped)
    assert codec.encode(decoded) == data


@given(st.dictionaries(keys, st.integers(), min_size=2, max_size=8))
def test_keys_sorted_at_every_level_whatever_the_insertion_order(d: dict) -> None:
    forward = codec.encode({"format_version": 1, "b": d, "a": [d]})
    backward = codec.encode({"a": [dict(reversed(d.items()))], "b": dict(reversed(d.items())), "format_version": 1})
    assert forward == backward
    assert forward.startswith(b'{"a":[')
    assert b" " not in codec.encode({"x": [1, 2], "y": {"z": None}})


def test_non_finite_floats_are_tagged_not_null() -> None:
    data = codec.encode({"format_version": 1, "m": [math.nan, math.inf, -math.inf, 1.5]})
    assert data == (
        b'{"format_version":1,"m":[{"$float":"NaN"},{"$float":"Infinity"},{"$float":"-Infinity"},1.5]}'
    )
    assert b"null" not in data


def test_note_lines_decode_to_their_kind() -> None:
    link = RunLink(run="r" * 40, created="2026-01-01T00:00:00Z", schema=PIN)
    data = codec.encode(link)
    assert b'"kind":"run"' in data
    assert codec.decode_note_line(data) == link
    assert codec.decode(data, NoteLine) == link


_ENCODE_IN_CHILD = textwrap.dedent(
    """
    import math, sys
    from gitprov import codec
    from gitprov.model import CodeVersion, RunRecord, SchemaPin
    names = {"lr", "batch", "epochs", "ü-key", "z", "a", "dropout", "β", "seed", "x" * 20}
    params = {k: {"nested": {n: len(n) for n in names}, "v": math.nan} for k in names}
    params["inf"] = [math.inf, -math.inf, 0.1, 1e-7, 10**18]
    record = RunRecord(created="2026-01-01T00:00:00.000000Z", nonce="n", code=CodeVersion(commit=None),
                       params=params, schema=SchemaPin(lexicon="sha256:00", version=1))
    sys.stdout.buffer.write(codec.encode(record))
    """
)


def test_same_bytes_across_processes_and_hash_seeds() -> None:
    outputs = set()
    for seed in ("0", "1", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", _ENCODE_IN_CHILD], capture_output=True, env=env, check=True)
        outputs.add(proc.stdout)
    assert len(outputs) == 1
    data = outputs.pop()
    assert codec.encode(codec.decode(data, RunRecord)) == data


# -- refusing what prov cannot read ------------------------------------------------------


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99, 2**40])
def test_unknown_format_version_says_to_upgrade(version: int) -> None:
    data = codec.encode({"format_version": version, "kind": "commit", "future": True})
    with pytest.raises(FormatVersionError, match="upgrade") as info:
        codec.decode(data, NoteLine, "note line")
    assert str(version) in str(info.value)
    assert "pip install -U git-prov" in str(info.value)
    assert info.value.exit_code == 6
    with pytest.raises(FormatVersionError):
        codec.decode_note_line(data)


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"a string"',
        b'{"kind": "commit"}',
        b'{"format_version": "1", "kind": "commit"}',
        b'{"format_version": true, "kind": "commit"}',
        b'{"format_version": 0, "kind": "commit"}',
        b'{"format_version": -1, "kind": "commit"}',
        b'{"format_version": 1, "kind": "no-such-kind"}',
        b'{"format_version": 1, "kind": "run"}',
        b'{"format_version": 1, "kind": "run", "run": "x", "created": "t", "schema": {"lexicon": "s", "version": 1}, "v": {"$float": "nope"}}',
    ],
)
def test_foreign_or_corrupt_data_is_a_data_error(data: bytes) -> None:
    with pytest.raises(DataError) as info:
        codec.decode_note_line(data)
    assert not isinstance(info.value, FormatVersionError)
    assert info.value.exit_code == 5


def test_missing_format_version_says_foreign() -> None:
    with pytest.raises(DataError, match="no format_version; it was not written by git-prov"):
        codec.decode(b'{"kind": "commit"}', CommitCapture)


def test_unencodable_values_are_data_errors() -> None:
    with pytest.raises(DataError, match="cannot encode"):
        codec.encode({"format_version": 1, "x": object()})
    with pytest.raises(DataError):
        codec.encode({"format_version": 1, "x": 1 + 2j})


def test_decoded_records_are_model_types() -> None:
    data = codec.encode(run_record({"lr": 0.1, "layers": [64, 64], "bad": math.nan}))
    record = codec.decode(data, RunRecord)
    assert isinstance(record, RunRecord) and isinstance(record.code, CodeVersion)
    assert math.isnan(record.params["bad"])
    assert msgspec.json.decode(data)["kind"] == "run-record"


@pytest.mark.parametrize("value", [{"$float": "NaN"}, {"$float": "bogus"}, {"$float": 1.0}])
def test_user_data_shaped_like_a_tagged_float_is_refused(value) -> None:
    """Stored as is, it would read back as a float, or make the record unreadable."""
    with pytest.raises(DataError, match="reserved"):
        codec.encode(run_record({"p": value}))
    assert codec.decode(codec.encode(run_record({"p": {"$float": 1, "other": 2}})), RunRecord).params == {
        "p": {"$float": 1, "other": 2}
    }
