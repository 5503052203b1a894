"""Summaries of long metric series: a few thousand of their points, kept with the run.

A chart of 10,000,000 points draws ~2,000 of them, but choosing those needs every point,
and reading every chunk back (240 MB inflated) is most of a chart's first view. So the
writer of a long series keeps, while it spills chunks, the points that draw it: the
series cut into at most ``MAX_BUCKETS`` runs of consecutive points (``width`` each, a
power of two that doubles as the series grows) and, of each, the first, the lowest, the
highest and the last point (M4 aggregation: a line drawn through them covers the same
pixels as one drawn through every point of the bucket). When the run ends, each long
series gets one summary blob, ``summaries/<key>/<writer>`` in the run's directory,
naming the chunks it stands for by name and blob id. A reader uses it only while those
chunks are still the ones stored under those names, and reads every other chunk.

A summary is msgpack of ``{"format_version", "kind": "metric-summary", "count", "nan",
"inf", "chunks": [[name, blob id], …], "points", "step", "timestamp", "value"}``:
``count`` points of the named chunks (``nan`` NaN and ``inf`` ±Inf values among them,
left out of the kept points), and ``points`` kept points as the chunks' columns are
stored (int64 deltas, float64). Series shorter than ``SUMMARY_FROM`` points cost their
writer one addition per spill and get no summary.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from ..errors import DataError, FormatVersionError
from ..model.common import FORMAT_VERSION
from .series import _deltas, _pack, _undelta, _unpack

__all__ = ["MAX_BUCKETS", "SUMMARY_FROM", "SeriesSummary", "decode_metric_summary"]

#: a writer summarises a metric once it has spilled this many of its points (the chunks
#: before, fewer points than this, are read whole: a few MB at most)
SUMMARY_FROM = 100_000
#: buckets of a summary at most: four points each, ~100 KB before git compresses it
MAX_BUCKETS = 1024
#: kept points a reader accepts in one summary (the writer keeps 4 * MAX_BUCKETS)
MAX_POINTS = 1 << 16
_CHUNK_NAME = re.compile(r"[0-9a-f]{8}-[0-9]{8}\Z")
_OID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")

#: a kept point: (index in the summarised points, step, timestamp ms, value)
_Point = tuple[int, int, int, float]
#: a bucket: its first, lowest, highest and last point
_Bucket = tuple[_Point, _Point, _Point, _Point]


def _numpy_values(values: list[float], packed: bytes | None) -> tuple[Any, bool, Any] | None:
    """``(values as a numpy array, whether all are finite, numpy)``, or None without
    numpy (not a dependency of git-prov: loaded here, for a long series, when installed)."""
    try:
        import numpy as np
    except ImportError:
        return None
    array = np.frombuffer(packed, dtype="<f8") if packed is not None else np.asarray(values, dtype=np.float64)
    return array, bool(np.isfinite(array).all()), np


def _merge(a: _Bucket, b: _Bucket) -> _Bucket:
    """The bucket of ``a``'s points followed by ``b``'s."""
    return (a[0], a[1] if a[1][3] <= b[1][3] else b[1], a[2] if a[2][3] >= b[2][3] else b[2], b[3])


class SeriesSummary:
    """What one writer keeps of one metric: how many points it spilled and, from
    ``SUMMARY_FROM`` on, the buckets of the chunks it spilled since."""

    __slots__ = ("spilled", "width", "buckets", "count", "nan", "inf", "chunks")

    def __init__(self) -> None:
        self.spilled = 0
        self.width = 1
        self.buckets: list[_Bucket] = []
        self.count = 0  # finite points in the buckets
        self.nan = 0
        self.inf = 0
        self.chunks: list[tuple[str, str]] = []

    def copy(self) -> SeriesSummary:
        other = SeriesSummary()
        other.spilled, other.width, other.count, other.nan, other.inf = (
            self.spilled, self.width, self.count, self.nan, self.inf)
        other.buckets, other.chunks = list(self.buckets), list(self.chunks)
        return other

    def add(self, name: str, oid: str, steps: list[int], stamps: list[int], values: list[float],
            packed: bytes | None = None) -> None:
        """Chunk ``name`` (blob ``oid``) of these points was spilled (``packed``: its
        value column as stored, read in bulk with numpy when numpy is installed)."""
        self.spilled += len(values)
        if not self.chunks and self.spilled < SUMMARY_FROM:
            return  # a short series (so far): nothing kept
        self.chunks.append((name, oid))
        array = _numpy_values(values, packed)
        finite = bool(array[1]) if array is not None else math.isfinite(sum(values))
        keep: Any = None
        if not finite:  # a NaN or ±Inf among them (or, in pure Python, an overflowing sum)
            if array is not None:
                np = array[2]
                mask = np.isfinite(array[0])
                nan = int(np.count_nonzero(np.isnan(array[0])))
                keep = np.flatnonzero(mask)
                kept = len(keep)
            else:
                keep = [i for i, v in enumerate(values) if math.isfinite(v)]
                nan = sum(1 for v in values if v != v)
                kept = len(keep)
            self.nan += nan
            self.inf += len(values) - kept - nan
        self._bucket(steps, stamps, values, keep, array[0] if array is not None else None)

    def _bucket(self, steps: list[int], stamps: list[int], values: list[float], keep: Any, array: Any) -> None:
        """Bucket the points of ``values`` (those at the indices ``keep``, when given):
        ``array`` is ``values`` as a numpy array, or None (pure Python)."""
        if keep is not None and array is not None:
            array = array[keep]
        elif keep is not None:
            values = [values[i] for i in keep]
        n, start = len(values) if keep is None else len(keep), self.count
        while -(-(start + n) // self.width) > MAX_BUCKETS:  # widen: pairs of buckets become one
            pairs = self.buckets
            self.buckets = [_merge(pairs[i], pairs[i + 1]) if i + 1 < len(pairs) else pairs[i]
                            for i in range(0, len(pairs), 2)]
            self.width *= 2
        width, buckets = self.width, self.buckets

        def point(i: int) -> _Point:
            j = i if keep is None else int(keep[i])  # where the point is in the chunk
            return (start + i, steps[j], stamps[j], float(array[i]) if array is not None else values[i])

        pos = 0
        while pos < n:
            index = (start + pos) // width
            end = min(n, (index + 1) * width - start)
            if array is not None:
                segment = array[pos:end]
                low, high = pos + int(segment.argmin()), pos + int(segment.argmax())
            else:
                segment = values[pos:end]
                low, high = pos + segment.index(min(segment)), pos + segment.index(max(segment))
            bucket = (point(pos), point(low), point(high), point(end - 1))
            if index < len(buckets):  # the last bucket, partly filled by the chunk before
                buckets[index] = _merge(buckets[index], bucket)
            else:
                buckets.append(bucket)
            pos = end
        self.count = start + n

    def encode(self) -> bytes | None:
        """The summary blob, or None when nothing is kept (a short series)."""
        if not self.chunks:
            return None
        kept = sorted({p for bucket in self.buckets for p in bucket})
        return msgspec.msgpack.encode({
            "format_version": FORMAT_VERSION, "kind": "metric-summary",
            "count": self.count + self.nan + self.inf, "nan": self.nan, "inf": self.inf,
            "chunks": [list(c) for c in self.chunks], "points": len(kept),
            "step": _pack("q", _deltas([p[1] for p in kept])),
            "timestamp": _pack("q", _deltas([p[2] for p in kept])),
            "value": _pack("d", [p[3] for p in kept]),
        })


def _count(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"metric-summary {name} is {value!r}, not a count")
    return value


def decode_metric_summary(data: bytes, columns: bool = True) -> dict[str, Any]:
    """A summary blob, checked: ``count``, ``nan``, ``inf``, ``chunks`` (``(name, blob
    id)`` pairs) and, with ``columns``, the kept points as ``step``, ``timestamp`` and
    ``value`` lists (else their little-endian bytes, ``*_bytes``, for bulk readers)."""
    try:
        obj = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise DataError(f"metric summary is corrupt: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("kind") != "metric-summary":
        raise DataError("not a metric-summary")
    version = obj.get("format_version")
    if version is None or isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DataError(f"metric-summary has format_version {version!r}, not a positive integer")
    if version > FORMAT_VERSION:
        raise FormatVersionError(f"metric-summary format version {version} is newer than this git-prov reads; "
                                 "upgrade with: pip install -U git-prov")
    count, nan, inf, points = (_count(obj, n) for n in ("count", "nan", "inf", "points"))
    if points > MAX_POINTS or points + nan + inf > count:
        raise DataError(f"metric-summary keeps {points} points of {count}, more than it may")
    chunks = obj.get("chunks")
    if not isinstance(chunks, list) or not chunks or not all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(s, str) for s in c)
            and _CHUNK_NAME.match(c[0]) and _OID.match(c[1]) for c in chunks):
        raise DataError("metric-summary chunks are not a list of [<writer>-<seq>, blob id] pairs")
    if len({c[0] for c in chunks}) != len(chunks):
        raise DataError("metric-summary names a chunk twice")
    out: dict[str, Any] = {"count": count, "nan": nan, "inf": inf, "chunks": [(c[0], c[1]) for c in chunks]}
    for name in ("step", "timestamp", "value"):
        column = obj.get(name)
        if not isinstance(column, bytes) or len(column) != 8 * points:
            raise DataError(f"metric-summary column {name!r} does not hold {points} 8-byte values")
        out[name + "_bytes"] = column
    if columns:
        out["step"] = _undelta(_unpack("q", out["step_bytes"]))
        out["timestamp"] = _undelta(_unpack("q", out["timestamp_bytes"]))
        out["value"] = _unpack("d", out["value_bytes"]).tolist()
    return out
