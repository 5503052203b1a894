"""``series``: metric chunks round-trip bit for bit (NaN, ±Inf, -0.0 included), their
columns are the documented little-endian deltas, and what a decoder refuses. Cases
marked "today" pin behaviour that a stricter decoder would change on purpose."""

from __future__ import annotations

import math
import struct

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitprov.errors import DataError, FormatVersionError
from gitprov.model.common import FORMAT_VERSION
from gitprov.runs.series import (
    PLANES_FROM,
    check_metric_chunk,
    decode_metric_chunk,
    decode_observation_chunk,
    encode_metric_chunk,
    encode_observation_chunk,
    metric_chunk_columns,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def bits(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}d", *values)


def nan_with_payload(payload: int, negative: bool = False) -> float:
    """A quiet NaN carrying ``payload`` in its mantissa (bit-exactness, not just isnan)."""
    raw = (0xFFF8 if negative else 0x7FF8) << 48 | (payload & ((1 << 51) - 1))
    return struct.unpack("<d", struct.pack("<Q", raw))[0]


SPECIAL = [math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -5e-324, 1.7976931348623157e308,
           nan_with_payload(1), nan_with_payload(0xDEADBEEF, negative=True)]
values_st = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(SPECIAL)
# any int64 whose difference to its neighbour (and to 0, for the first) is an int64 too
positions = st.integers(min_value=-(2**62), max_value=2**62 - 1)


@st.composite
def chunks(draw: st.DrawFn) -> tuple[list[int], list[int], list[float]]:
    n = draw(st.integers(min_value=0, max_value=60))
    steps = draw(st.lists(positions, min_size=n, max_size=n))
    stamps = draw(st.lists(positions | st.integers(min_value=1_600_000_000_000, max_value=1_900_000_000_000),
                           min_size=n, max_size=n))
    values = draw(st.lists(values_st, min_size=n, max_size=n))
    return steps, stamps, values


# -- metric chunks: round trip -------------------------------------------------------

@given(chunks())
def test_metric_chunks_round_trip_bit_exactly(chunk: tuple[list[int], list[int], list[float]]) -> None:
    steps, stamps, values = chunk
    data = encode_metric_chunk(steps, stamps, values)
    got_steps, got_stamps, got_values = decode_metric_chunk(data)
    assert got_steps == steps and got_stamps == stamps
    assert bits(got_values) == bits(values)
    assert encode_metric_chunk(got_steps, got_stamps, got_values) == data  # canonical: same points, same blob
    check_metric_chunk(data)  # what a pull checks, and passes


def test_special_values_keep_their_bits() -> None:
    _, _, values = decode_metric_chunk(encode_metric_chunk(list(range(len(SPECIAL))), [0] * len(SPECIAL), SPECIAL))
    assert bits(values) == bits(SPECIAL)
    assert math.copysign(1.0, values[SPECIAL.index(-0.0)]) == -1.0
    assert values[2] == math.inf and values[3] == -math.inf


def test_an_empty_series_round_trips() -> None:
    data = encode_metric_chunk([], [], [])
    assert decode_metric_chunk(data) == ([], [], [])
    assert msgspec.msgpack.decode(data) == {"format_version": FORMAT_VERSION, "kind": "metric-chunk", "count": 0,
                                            "step": b"", "timestamp": b"", "value": b""}


# -- metric chunks: layout and delta encoding ----------------------------------------

def planes(data: bytes) -> bytes:
    """8-byte values as byte planes (format 3): every value's byte 0, then byte 1, …"""
    return bytes(data[i + 8 * k] for i in range(8) for k in range(len(data) // 8))


def test_columns_are_byte_planes_of_little_endian_int64_deltas_and_float64_values() -> None:
    data = encode_metric_chunk([10, 11, 13, 13, 5], [1_700_000_000_000, 1_700_000_000_250, 1_700_000_000_200, 0, -1],
                               [0.5, -1.0, math.inf, math.nan, -0.0])
    obj = msgspec.msgpack.decode(data)
    assert sorted(obj) == ["count", "format_version", "kind", "step", "timestamp", "value"]
    assert obj["format_version"] == FORMAT_VERSION >= PLANES_FROM and obj["kind"] == "metric-chunk" and obj["count"] == 5
    # repeated and falling steps: 0 and negative deltas; the low bytes of the five deltas first
    assert obj["step"] == planes(struct.pack("<5q", 10, 1, 2, 0, -8))
    assert obj["step"][:5] == bytes([10, 1, 2, 0, 0xF8]) and obj["step"][5:10] == bytes([0, 0, 0, 0, 0xFF])
    assert obj["timestamp"] == planes(struct.pack("<5q", 1_700_000_000_000, 250, -50, -1_700_000_000_200, -1))
    assert obj["value"] == planes(bits([0.5, -1.0, math.inf, math.nan, -0.0]))
    assert metric_chunk_columns(data) == (5, struct.pack("<5q", 10, 1, 2, 0, -8),
                                          struct.pack("<5q", 1_700_000_000_000, 250, -50, -1_700_000_000_200, -1),
                                          bits([0.5, -1.0, math.inf, math.nan, -0.0]))


@pytest.mark.parametrize("version", [1, 2])
def test_chunks_of_formats_1_and_2_keep_their_values_one_after_the_other(version: int) -> None:
    """What git-prov 0.1 and 0.2 wrote: columns not in planes. Read as they are."""
    steps, stamps, values = [3, 4, 9], [1_700_000_000_000, 1_700_000_000_010, 1_700_000_000_011], [0.25, math.nan, -2.0]
    old = msgspec.msgpack.encode({"format_version": version, "kind": "metric-chunk", "count": 3,
                                  "step": struct.pack("<3q", 3, 1, 5),
                                  "timestamp": struct.pack("<3q", 1_700_000_000_000, 10, 1), "value": bits(values)})
    got_steps, got_stamps, got_values = decode_metric_chunk(old)
    assert (got_steps, got_stamps, bits(got_values)) == (steps, stamps, bits(values))
    assert metric_chunk_columns(old)[1:] == metric_chunk_columns(encode_metric_chunk(steps, stamps, values))[1:]


def test_byte_planes_make_a_metric_smaller_once_compressed() -> None:
    """The reason for format 3: the sign and exponent bytes of a metric's values and the
    high bytes of its deltas repeat, and zlib (git's compression) packs them together."""
    import random
    import zlib

    rng = random.Random(7)
    n = 1000
    values = [2.5 * math.exp(-i / 200) + 0.1 + abs(rng.gauss(0.0, 0.05)) for i in range(n)]
    stamps = [1_700_000_000_000 + 1000 * i + rng.randrange(50) for i in range(n)]
    plain = msgspec.msgpack.encode({"format_version": 2, "kind": "metric-chunk", "count": n,
                                    "step": struct.pack(f"<{n}q", 0, *[1] * (n - 1)),
                                    "timestamp": struct.pack(f"<{n}q", stamps[0],
                                                             *[b - a for a, b in zip(stamps, stamps[1:], strict=False)]),
                                    "value": bits(values)})
    now = encode_metric_chunk(list(range(n)), stamps, values)
    assert len(now) == len(plain)
    assert len(zlib.compress(now, 1)) < 0.9 * len(zlib.compress(plain, 1))  # 8.4 against 9.9 bytes a point


@pytest.mark.parametrize("steps", [
    [INT64_MAX], [INT64_MIN], [INT64_MIN, -1, 0], [0, INT64_MAX], [-1, INT64_MIN], [INT64_MAX, 0, INT64_MAX],
])
def test_extreme_steps_whose_deltas_fit_in_int64_round_trip(steps: list[int]) -> None:
    n = len(steps)
    assert decode_metric_chunk(encode_metric_chunk(steps, steps, [1.0] * n)) == (steps, steps, [1.0] * n)


@pytest.mark.parametrize("steps", [[-1, INT64_MAX], [INT64_MAX, INT64_MIN], [2**63], [INT64_MIN - 1]])
def test_steps_whose_deltas_leave_int64_raise_overflow_error_today(steps: list[int]) -> None:
    """A delta outside int64 is not stored; today that is a bare ``OverflowError``
    (``Run.log_metric`` accepts such steps and fails at the flush)."""
    with pytest.raises(OverflowError):
        encode_metric_chunk(steps, [0] * len(steps), [1.0] * len(steps))


def test_encode_refuses_values_of_the_wrong_type_with_type_error_today() -> None:
    with pytest.raises(TypeError):
        encode_metric_chunk([1.5], [0], [1.0])
    with pytest.raises(TypeError):
        encode_metric_chunk([0], [0], ["1.0"])  # type: ignore[list-item]
    # bools and ints pass as their numbers
    assert decode_metric_chunk(encode_metric_chunk([True], [0], [2])) == ([1], [0], [2.0])  # type: ignore[list-item]


# -- metric chunks: what decoding refuses --------------------------------------------

#: what decodes a chunk, and what a pull checks it with (the same refusals, nothing decoded)
DECODERS = [decode_metric_chunk, check_metric_chunk]

def raw_chunk(**fields: object) -> bytes:
    base = {"format_version": FORMAT_VERSION, "kind": "metric-chunk", "count": 1,
            "step": struct.pack("<q", 0), "timestamp": struct.pack("<q", 0), "value": bits([1.0])}
    return msgspec.msgpack.encode({k: v for k, v in {**base, **fields}.items() if v is not None})


@pytest.mark.parametrize(("data", "message"), [
    (b"\xc1", "metric chunk is corrupt"),
    (b"", "metric chunk is corrupt"),
    (msgspec.msgpack.encode([1, 2, 3]), "not a metric-chunk"),
    (raw_chunk(kind="observation-chunk"), "not a metric-chunk"),
    (raw_chunk(count=2), "metric chunk columns have different lengths"),
    (raw_chunk(value=bits([1.0, 2.0])), "metric chunk columns have different lengths"),
    (encode_metric_chunk([1, 2], [1], [1.0]), "metric chunk columns have different lengths"),
])
@pytest.mark.parametrize("decode", DECODERS)
def test_decode_refuses_corrupt_or_foreign_chunks(data: bytes, message: str, decode) -> None:
    with pytest.raises(DataError, match=message):
        decode(data)


def test_an_observation_chunk_is_not_a_metric_chunk_and_back() -> None:
    with pytest.raises(DataError, match="not a metric-chunk"):
        decode_metric_chunk(encode_observation_chunk([0], [0], [1.0]))
    with pytest.raises(DataError, match="not a observation-chunk"):
        decode_observation_chunk(encode_metric_chunk([0], [0], [1.0]))


@pytest.mark.parametrize("decode", DECODERS)
def test_a_newer_format_version_is_refused(decode) -> None:
    with pytest.raises(FormatVersionError, match=f"format version {FORMAT_VERSION + 1} is newer.*pip install -U git-prov"):
        decode(raw_chunk(format_version=FORMAT_VERSION + 1))


@pytest.mark.parametrize("version", [None, 0, -1, True, "1", 1.0])
@pytest.mark.parametrize("decode", DECODERS)
def test_a_chunk_without_a_positive_integer_version_is_not_a_chunk(version: object, decode) -> None:
    with pytest.raises(DataError, match="not written by git-prov"):
        decode(raw_chunk(format_version=version))


@pytest.mark.parametrize(("fields", "message"), [
    ({"step": None}, "no 'step' column"),
    ({"step": [0]}, "8-byte values"),
    ({"step": b"\x00" * 7}, "8-byte values"),
    ({"count": -1}, "not a count"),
    ({"count": True}, "not a count"),
    ({"count": 2}, "different lengths"),
])
@pytest.mark.parametrize("decode", DECODERS)
def test_malformed_columns_are_data_errors(fields: dict, message: str, decode) -> None:
    """Chunks come from remotes too: whatever is wrong is a ``DataError`` naming it."""
    with pytest.raises(DataError, match=message):
        decode(raw_chunk(**fields))  # a None field is left out


# -- observation chunks --------------------------------------------------------------

leaves = (st.none() | st.booleans() | st.integers(min_value=INT64_MIN, max_value=2**64 - 1) | values_st
          | st.text(max_size=10) | st.binary(max_size=10))
observation_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


def same(a: object, b: object) -> bool:
    """Equality with floats compared by their bits."""
    if isinstance(a, float) and isinstance(b, float):
        return bits([a]) == bits([b])
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)  # type: ignore[attr-defined]
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=2**32), positions, observation_values), max_size=10))
def test_observation_chunks_round_trip(points: list[tuple[int, int, object]]) -> None:
    epochs = [p[0] for p in points]
    stamps = [p[1] for p in points]
    values = [p[2] for p in points]
    data = encode_observation_chunk(epochs, stamps, values)
    got = decode_observation_chunk(data)
    assert got[0] == epochs and got[1] == stamps and same(got[2], values)
    assert msgspec.msgpack.decode(data)["count"] == len(values)


@pytest.mark.parametrize(("data", "error", "message"), [
    (b"\xc1", DataError, "observation chunk is corrupt"),
    (msgspec.msgpack.encode({"kind": "observation-chunk", "format_version": FORMAT_VERSION + 1,
                             "epoch": [], "timestamp": [], "value": []}), FormatVersionError, "newer"),
    (msgspec.msgpack.encode("observation-chunk"), DataError, "not a observation-chunk"),
])
def test_decode_observation_refuses(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decode_observation_chunk(data)


def test_observation_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(DataError, match="different lengths"):
        decode_observation_chunk(encode_observation_chunk([1, 2], [3], ["a"]))
    with pytest.raises(DataError, match="integers"):
        decode_observation_chunk(encode_observation_chunk(["x"], [3], ["a"]))
