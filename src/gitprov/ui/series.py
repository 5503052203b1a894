"""Metric series for charts: the stored chunks decoded in bulk with numpy, cached by
their blob ids, and cut down on the server with largest-triangle-three-buckets (LTTB)
so a chart of 10,000,000 points ships a few thousand. A long series' whole-range chart
is cut from the summary its writer stored with the run (``runs/summary.py``) and the
chunks no summary stands for, without reading the chunks a summary stands for."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..store.prov_store import ProvStore

__all__ = ["DEFAULT_POINTS", "lttb", "series_payload", "SeriesCache"]

#: points a chart asks for by default: more than a wide screen has pixels
DEFAULT_POINTS = 2000
#: cut-down series kept on disk at most (each a few tens of KB)
KEEP_FILES = 512


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of the ``n_out`` points that keep the shape of ``(x, y)`` (Steinarsson's
    largest-triangle-three-buckets): the first and last point, and in each bucket
    between them the point making the largest triangle with the point kept before it
    and the mean of the next bucket. ``x`` ascending (float or int); ``y`` finite."""
    import numpy as np

    n = len(x)
    if n_out >= n or n_out < 3:
        return np.arange(n)
    edges = np.linspace(1, n - 1, n_out - 1).astype(np.int64)  # n_out - 2 buckets over the inner points
    # mean of every bucket at once (the "next bucket" point of the one before it)
    sums_x = np.add.reduceat(x[1:n - 1], edges[:-1] - 1, dtype=np.float64)  # x may be int64 (steps, ms)
    sums_y = np.add.reduceat(y[1:n - 1], edges[:-1] - 1, dtype=np.float64)
    sizes = np.diff(edges)
    sizes[sizes == 0] = 1
    mean_x, mean_y = np.append(sums_x / sizes, x[-1]), np.append(sums_y / sizes, y[-1])
    out = np.empty(n_out, dtype=np.int64)
    out[0], out[-1] = 0, n - 1
    a = 0
    for i in range(n_out - 2):
        lo, hi = edges[i], max(edges[i + 1], edges[i] + 1)
        bx, by = x[lo:hi], y[lo:hi]
        cx, cy = mean_x[i + 1], mean_y[i + 1]
        ax, ay = x[a], y[a]
        area = np.abs((ax - cx) * (by - ay) - (ax - bx) * (cy - ay))
        a = lo + int(area.argmax())
        out[i + 1] = a
    return np.unique(out)


class SeriesCache:
    """Decoded series by ``(run, key)``, valid while their chunk blob ids are the same
    (a running run's new chunks make a new entry); least recently used dropped past
    ``max_points`` points."""

    def __init__(self, max_points: int = 30_000_000, keep_dir: str | None = None) -> None:
        self.max_points = max_points
        #: where whole-range payloads are also kept on disk (``.git/prov/ui-cache`` for
        #: ``prov ui``): a series seen before is drawn without decoding after a restart
        self.keep_dir = keep_dir
        self._entries: OrderedDict[tuple[str, str], tuple[tuple[str, ...], Any]] = OrderedDict()
        self._lock = threading.Lock()
        #: whole-range payloads already cut down, by (run, key, chunk ids, points, x)
        self._payloads: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()

    def payload(self, store: ProvStore, run_id: str, key: str, points: int = DEFAULT_POINTS, x: str = "step",
                lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
        """``series_payload`` of metric ``key``; the whole-range ones are kept (a chart
        reloaded, or polled while its run is finished, is not cut down again), in
        memory and, with ``keep_dir``, on disk by the chunks' blob ids."""
        from ..runs.reading import metric_chunk_ids

        if lo is not None or hi is not None:
            return series_payload(self.columns(store, run_id, key), points, x, lo, hi)
        ident = (run_id, key, tuple(metric_chunk_ids(store.ledger, run_id, key)), points, x)
        with self._lock:
            found = self._payloads.get(ident)
        if found is None:
            found = self._kept(ident)
        if found is None:
            found = self._summarised(store, run_id, key, ident[2], points, x)
        if found is None:
            found = series_payload(self.columns(store, run_id, key), points, x)
            self._keep(ident, found)
        with self._lock:
            self._payloads[ident] = found
            self._payloads.move_to_end(ident)
            while len(self._payloads) > 256:
                self._payloads.popitem(last=False)
        return found

    def _summarised(self, store: ProvStore, run_id: str, key: str, oids: tuple[str, ...], points: int,
                    x: str) -> dict[str, Any] | None:
        """The whole-range payload from the run's summaries of ``key`` and the chunks
        they do not stand for; None when no summary stands for a stored chunk (a short
        series, a run older than summaries, a summary of chunks no longer stored) or the
        decoded series is in memory already."""
        import numpy as np

        from ..errors import ProvError
        from ..runs.reading import metric_chunks, metric_summary_ids
        from ..runs.summary import decode_metric_summary

        with self._lock:
            hit = self._entries.get((run_id, key))
        if hit is not None and hit[0] == oids:
            return None
        summary_ids = metric_summary_ids(store.ledger, run_id, key)
        if not summary_ids:
            return None
        chunks = metric_chunks(store.ledger, run_id, key)
        stored = dict(chunks)
        by_chunk: dict[str, dict[str, Any]] = {}
        for oid in summary_ids:
            try:
                summary = decode_metric_summary(store.git.odb.read_typed(oid, "blob"), columns=False)
            except ProvError:
                continue  # unreadable: the chunks it names are read instead
            names = [name for name, _ in summary["chunks"]]
            if all(stored.get(name) == blob and name not in by_chunk for name, blob in summary["chunks"]):
                by_chunk.update(dict.fromkeys(names, summary))
        if not by_chunk:
            return None
        raw = iter([_decode(blob) for blob in _blobs(store, [o for n, o in chunks if n not in by_chunk])])
        parts, done, more = [], set(), [0, 0, 0]
        for name, _ in chunks:
            summary = by_chunk.get(name)
            if summary is None:
                parts.append(next(raw))
            elif id(summary) not in done:
                done.add(id(summary))
                kept = len(summary["value_bytes"]) // 8
                parts.append((np.cumsum(np.frombuffer(summary["step_bytes"], dtype="<i8")),
                              np.cumsum(np.frombuffer(summary["timestamp_bytes"], dtype="<i8")),
                              np.frombuffer(summary["value_bytes"], dtype="<f8")))
                more = [more[0] + summary["count"] - kept, more[1] + summary["nan"], more[2] + summary["inf"]]
        cols = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))
        return {**series_payload(cols, points, x, summarised=(more[0], more[1], more[2])), "summary": True}

    def _kept_path(self, ident: tuple[Any, ...]) -> str:
        import hashlib
        import json

        name = hashlib.sha256(json.dumps(ident).encode()).hexdigest()
        return os.path.join(self.keep_dir or "", name + ".json")

    def _kept(self, ident: tuple[Any, ...]) -> dict[str, Any] | None:
        """The payload kept on disk for ``ident``, or None (none, or not readable as one)."""
        import json

        if self.keep_dir is None:
            return None
        try:
            fd = os.open(self._kept_path(ident), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f:
                found = json.loads(f.read())
        except (OSError, ValueError):
            return None
        if not isinstance(found, dict) or found.get("ident") != json.loads(json.dumps(ident)):
            return None
        payload = found.get("payload")
        return payload if isinstance(payload, dict) and {"step", "time", "value", "total"} <= payload.keys() else None

    def _keep(self, ident: tuple[Any, ...], payload: dict[str, Any]) -> None:
        """Write ``payload`` to disk (best effort), keeping the newest ``KEEP_FILES``."""
        import json

        from .._util.paths import replace_file

        if self.keep_dir is None:
            return
        with contextlib.suppress(OSError, ValueError):
            os.makedirs(self.keep_dir, exist_ok=True)
            replace_file(self._kept_path(ident), json.dumps({"ident": ident, "payload": payload}).encode())
            names = [n for n in os.listdir(self.keep_dir) if n.endswith(".json")]
            if len(names) > KEEP_FILES:
                paths = sorted((os.path.join(self.keep_dir, n) for n in names), key=_mtime)
                for old in paths[:len(paths) - KEEP_FILES]:
                    with contextlib.suppress(OSError):
                        os.unlink(old)

    def columns(self, store: ProvStore, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, timestamps_ms, values)`` of metric ``key`` of run ``run_id``."""
        import numpy as np

        from ..runs.reading import metric_chunk_ids

        ids = metric_chunk_ids(store.ledger, run_id, key)
        oids = tuple(ids)
        with self._lock:
            hit = self._entries.get((run_id, key))
            if hit is not None and hit[0] == oids:
                self._entries.move_to_end((run_id, key))
                return hit[1]
        chunks = [_decode(blob) for blob in _blobs(store, ids)]  # decoded while git inflates the next
        steps, stamps, values = [c[0] for c in chunks], [c[1] for c in chunks], [c[2] for c in chunks]
        empty = np.empty(0, dtype=np.int64)
        cols = (np.concatenate(steps) if steps else empty, np.concatenate(stamps) if stamps else empty,
                np.concatenate(values) if values else np.empty(0))
        with self._lock:
            self._entries[(run_id, key)] = (oids, cols)
            total = sum(len(c[1][2]) for c in self._entries.values())
            while total > self.max_points and len(self._entries) > 1:
                _, (_, old) = self._entries.popitem(last=False)
                total -= len(old[2])
        return cols


#: from this many chunks on, a series is read through ``git cat-file --batch`` (pack
#: deltas and inflation in C, in a process of its own) rather than the object layer
CATFILE_CHUNKS = 3


def _decode(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, timestamps_ms, values)`` of one metric chunk, as arrays."""
    import numpy as np

    from ..runs.series import metric_chunk_columns

    _, dstep, dstamp, value = metric_chunk_columns(blob)
    return (np.cumsum(np.frombuffer(dstep, dtype="<i8")), np.cumsum(np.frombuffer(dstamp, dtype="<i8")),
            np.frombuffer(value, dtype="<f8"))


def _blobs(store: ProvStore, oids: list[str]) -> Iterator[bytes]:
    """The blobs ``oids``, in order."""
    from ..errors import DataError
    from ..store import catfile

    proc = catfile.start(store.git) if len(oids) >= CATFILE_CHUNKS else None
    if proc is None:
        for oid in oids:
            yield store.git.odb.read_typed(oid, "blob")
        return
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write("".join(f"{oid}\n" for oid in oids).encode("ascii"))
        proc.stdin.close()
        for oid in oids:
            header = catfile.read_header(proc.stdout)
            if header is None or header.type != "blob":
                raise DataError(f"metric chunk {oid} is missing from the repository; run 'git fsck'")
            data = proc.stdout.read(header.size)
            proc.stdout.read(1)
            yield data
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def series_payload(cols: tuple[np.ndarray, np.ndarray, np.ndarray], points: int = DEFAULT_POINTS,
                   x: str = "step", lo: float | None = None, hi: float | None = None,
                   summarised: tuple[int, int, int] = (0, 0, 0)) -> dict[str, Any]:
    """What a chart draws: at most ``points`` points of the series chosen by LTTB along
    ``x`` (``step`` or ``time``) within ``[lo, hi]`` when given, each with its step,
    time (ms) and value; non-finite values are left out of the curve and counted.
    ``summarised``: points, NaN and ±Inf values of the series that ``cols`` stands for
    through summaries and does not hold (counted in ``total``, ``nan`` and ``inf``)."""
    import numpy as np

    steps, stamps, values = cols
    xs = steps if x == "step" else stamps  # int64: LTTB sums in float64, no 80 MB copy
    order = None
    if len(xs) > 1 and not bool(np.all(xs[1:] >= xs[:-1])):  # steps logged out of order
        order = np.argsort(xs, kind="stable")
        xs, steps, stamps, values = xs[order], steps[order], stamps[order], values[order]
    finite = np.isfinite(values)
    bad = len(values) - int(np.count_nonzero(finite))
    nan = int(np.count_nonzero(np.isnan(values))) if bad else 0
    if not bad and lo is None and hi is None:  # the common case: no copy of the columns
        chosen = lttb(xs, values, points)
    else:
        keep = finite
        if lo is not None:
            keep = keep & (xs >= lo)
        if hi is not None:
            keep = keep & (xs <= hi)
        idx = np.flatnonzero(keep)
        chosen = idx[lttb(xs[idx], values[idx], points)] if len(idx) else idx
    return {
        "total": int(len(values)) + summarised[0], "shown": int(len(chosen)), "x": x,
        "nan": nan + summarised[1], "inf": bad - nan + summarised[2],
        "step": steps[chosen].tolist(), "time": stamps[chosen].tolist(), "value": values[chosen].tolist(),
    }
