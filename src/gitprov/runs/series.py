"""Metric and observation series chunks: columnar, delta-encoded, append-only.

A metric chunk is msgpack ``{"format_version", "kind": "metric-chunk", "count",
"step", "timestamp", "value"}`` where ``step`` and ``timestamp`` (ms) are
little-endian int64 deltas and ``value`` little-endian float64 — exact for NaN/±Inf.
From format 3 on, each column is stored as its eight **byte planes** (every value's
byte 0, then every value's byte 1, …): the high bytes of deltas and the sign and
exponent bytes of a metric's values repeat, and zlib (git's compression) packs a run of
them into a few bytes, where interleaved they cost about a byte each. Chunk names are
``<writer>-<seq>`` so two writers never collide and a merge is a union of names.
"""

from __future__ import annotations

import sys
from array import array
from typing import Any

import msgspec

from ..errors import DataError, FormatVersionError
from ..model.common import FORMAT_VERSION

__all__ = ["PLANES_FROM", "check_metric_chunk", "decode_metric_chunk", "decode_observation_chunk", "encode_metric_chunk",
           "encode_observation_chunk", "metric_chunk_columns", "pack_values"]

_LITTLE = sys.byteorder == "little"
#: the first format whose metric chunks store their columns as byte planes
PLANES_FROM = 3


def _planes(data: bytes) -> bytes:
    """8-byte values as byte planes: every value's byte 0, then every value's byte 1, …"""
    return b"".join(data[i::8] for i in range(8))


def _interleave(data: bytes) -> bytes:
    """The inverse of ``_planes``: the 8-byte values back, one after the other."""
    n = len(data) // 8
    out = bytearray(len(data))
    for i in range(8):
        out[i::8] = data[i * n:(i + 1) * n]
    return bytes(out)


def _pack(typecode: str, values: Any) -> bytes:
    arr = array(typecode, values)
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def _unpack(typecode: str, data: bytes) -> array:
    arr = array(typecode)
    arr.frombytes(data)
    if not _LITTLE:
        arr.byteswap()
    return arr


def _deltas(values: list[int]) -> list[int]:
    prev = 0
    out = []
    for v in values:
        out.append(v - prev)
        prev = v
    return out


def _undelta(deltas: array) -> list[int]:
    total = 0
    out = []
    for d in deltas:
        total += d
        out.append(total)
    return out


def pack_values(values: list[float]) -> bytes:
    """A metric chunk's ``value`` column: little-endian float64."""
    return _pack("d", values)


def encode_metric_chunk(steps: list[int], timestamps: list[int], values: list[float],
                        packed_values: bytes | None = None) -> bytes:
    """A metric chunk of these points (``packed_values``: ``pack_values(values)``, when
    the caller has it already)."""
    return msgspec.msgpack.encode(
        {
            "format_version": FORMAT_VERSION,
            "kind": "metric-chunk",
            "count": len(values),
            "step": _planes(_pack("q", _deltas(steps))),
            "timestamp": _planes(_pack("q", _deltas(timestamps))),
            "value": _planes(_pack("d", values) if packed_values is None else packed_values),
        }
    )


def _check(obj: Any, kind: str) -> int:
    """The chunk's format version, once it is one this git-prov reads."""
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        raise DataError(f"not a {kind}")
    version = obj.get("format_version")
    if version is None or isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DataError(f"{kind} has format_version {version!r}, not a positive integer; it was not written by git-prov")
    if version > FORMAT_VERSION:
        raise FormatVersionError(f"{kind} format version {version} is newer than this git-prov reads; upgrade with: pip install -U git-prov")
    return version


def _columns(obj: dict[str, Any], kind: str, names: tuple[str, ...]) -> list[Any]:
    """The named columns and the count, each of the right type, else a ``DataError``."""
    count = obj.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise DataError(f"{kind} count is {count!r}, not a count")
    columns = []
    for name in names:
        if name not in obj:
            raise DataError(f"{kind} has no {name!r} column")
        columns.append(obj[name])
    return [count, *columns]


def metric_chunk_columns(data: bytes) -> tuple[int, bytes, bytes, bytes]:
    """``(count, step deltas, timestamp deltas, values)`` of a metric chunk, checked, its
    columns as little-endian 8-byte values whatever the chunk's format (for readers that
    decode them in bulk)."""
    version, count, columns = _stored_columns(data)
    if version >= PLANES_FROM:
        columns = [_interleave(column) for column in columns]
    return count, columns[0], columns[1], columns[2]


def check_metric_chunk(data: bytes) -> None:
    """What ``metric_chunk_columns`` checks (``DataError``, ``FormatVersionError``), its
    columns left as stored: a pull checks every chunk it receives and decodes none."""
    _stored_columns(data)


def _stored_columns(data: bytes) -> tuple[int, int, list[bytes]]:
    """``(format version, count, [step, timestamp, value])`` of a metric chunk, checked,
    the columns as stored (byte planes from ``PLANES_FROM`` on)."""
    try:
        obj = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise DataError(f"metric chunk is corrupt: {exc}") from exc
    version = _check(obj, "metric-chunk")
    count, *columns = _columns(obj, "metric-chunk", ("step", "timestamp", "value"))
    for name, column in zip(("step", "timestamp", "value"), columns, strict=True):
        if not isinstance(column, bytes) or len(column) % 8:
            raise DataError(f"metric-chunk column {name!r} is not a whole number of 8-byte values")
        if len(column) != 8 * count:
            raise DataError("metric chunk columns have different lengths")
    return version, count, columns


def decode_metric_chunk(data: bytes) -> tuple[list[int], list[int], list[float]]:
    """``(steps, timestamps_ms, values)`` of a metric chunk."""
    count, *columns = metric_chunk_columns(data)
    steps = _undelta(_unpack("q", columns[0]))
    stamps = _undelta(_unpack("q", columns[1]))
    values = _unpack("d", columns[2]).tolist()
    if not len(steps) == len(stamps) == len(values) == count:
        raise DataError("metric chunk columns have different lengths")
    return steps, stamps, values


def encode_observation_chunk(epochs: list[int], timestamps: list[int], values: list[Any]) -> bytes:
    return msgspec.msgpack.encode(
        {
            "format_version": FORMAT_VERSION,
            "kind": "observation-chunk",
            "count": len(values),
            "epoch": epochs,
            "timestamp": timestamps,
            "value": values,
        }
    )


def decode_observation_chunk(data: bytes) -> tuple[list[int], list[int], list[Any]]:
    try:
        obj = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise DataError(f"observation chunk is corrupt: {exc}") from exc
    _check(obj, "observation-chunk")
    count, epochs, stamps, values = _columns(obj, "observation-chunk", ("epoch", "timestamp", "value"))
    if not all(isinstance(c, list) for c in (epochs, stamps, values)):
        raise DataError("observation-chunk columns must be arrays")
    if not len(epochs) == len(stamps) == len(values) == count:
        raise DataError("observation chunk columns have different lengths")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (*epochs, *stamps)):
        raise DataError("observation-chunk epochs and timestamps must be integers")
    return epochs, stamps, values
