"""A pull decodes records and states with msgspec's typed decoders (fast) where a local
read uses ``codec.decode``: both must accept the same bytes, give the same values, and
refuse the same bytes with the same error (issue 16: remote data obeys local rules)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitprov import codec
from gitprov.errors import ProvError
from gitprov.exchange.blob_content import decode_model
from gitprov.model import RunRecord, RunState
from tests.test_codec import json_values, keys, run_record


def _outcome(decode):
    try:
        return "ok", codec.encode(decode())
    except ProvError as exc:
        return type(exc).__name__, str(exc)


def _same(data: bytes, model: type) -> tuple[str, object]:
    local = _outcome(lambda: codec.decode(data, model, "run 0123456789ab/x"))
    remote = _outcome(lambda: decode_model(data, model, "run {}/x", "0123456789abcdef"))
    assert remote == local
    return local


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, json_values, max_size=5))
def test_typed_decoding_reads_records_as_a_local_read_does(params: dict) -> None:
    # non-finite floats (tagged) included: those take codec.decode's own path
    assert _same(codec.encode(run_record(params)), RunRecord)[0] == "ok"


STATE = json.loads(codec.encode(RunState(lamport=3, writer="w", name="n", tags={"a": "b"},
                                         attributes={"x": 1.5}, params={"lr": 0.1})))
EDITS = {
    "as written": lambda d: d,
    "no format_version": lambda d: {k: v for k, v in d.items() if k != "format_version"},
    "a newer format_version": lambda d: {**d, "format_version": 99},
    "format_version 0": lambda d: {**d, "format_version": 0},
    "format_version true": lambda d: {**d, "format_version": True},
    "format_version a string": lambda d: {**d, "format_version": "2"},
    "a lamport clock of text": lambda d: {**d, "lamport": "3"},
    "a tag of a number": lambda d: {**d, "tags": {"a": 1}},
    "another kind": lambda d: {**d, "kind": "run-record"},
    "no kind": lambda d: {k: v for k, v in d.items() if k != "kind"},
    "an unknown field": lambda d: {**d, "later": [1, 2]},
    "a tagged NaN": lambda d: {**d, "attributes": {"x": {"$float": "NaN"}}},
    "a bad tag": lambda d: {**d, "attributes": {"x": {"$float": "nope"}}},
    "not an object": lambda d: [d],
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_typed_decoding_refuses_states_as_a_local_read_does(edit: str) -> None:
    _same(json.dumps(EDITS[edit](dict(STATE))).encode(), RunState)


@pytest.mark.parametrize("data", [b"", b"{", b"null", b"\xff", b'{"format_version": 2', b"[]"])
def test_malformed_bytes_are_refused_alike(data: bytes) -> None:
    assert _same(data, RunRecord)[0] != "ok"
    assert _same(data, RunState)[0] != "ok"
