"""The metric and observation calls of ``Run`` (``log_metric`` / ``get_metric_history``,
``log_observation`` / ``get_observations``): points buffered by the run's ``RunWriter``
and read back from the ledger, the chunks not yet written and the buffer, in logging
order."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from ..errors import UsageError
from ..keys import check_json_value, check_key
from . import reading
from .reading import MetricPoint, Observation
from .run_part import RunPart
from .writer import SeriesBuffer

__all__ = ["LAST_TIMESTAMP", "STEP_LIMIT", "MetricMethods"]


def _now_ms() -> int:
    return int(time.time() * 1000)


#: steps are stored as int64 deltas: any two must differ by less than 2**63
STEP_LIMIT = 1 << 62
#: timestamps: from the epoch to the year 10000, in seconds
LAST_TIMESTAMP = 253_402_300_800


def _to_ms(timestamp: Any) -> int:
    if isinstance(timestamp, datetime):
        seconds = timestamp.timestamp()
    elif isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        seconds = timestamp
    else:
        raise UsageError(f"timestamp must be seconds since the epoch or a datetime, got {type(timestamp).__name__}")
    if not 0 <= seconds < LAST_TIMESTAMP:  # NaN fails this too
        raise UsageError(f"timestamp {timestamp!r} is not between 1970 and the year 10000; pass seconds since the "
                         "epoch (time.time()) or a datetime")
    return int(seconds * 1000)


class MetricMethods(RunPart):
    """Mixed into ``Run``: its metric series and observations."""

    # -- metrics -----------------------------------------------------------------
    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: Any = None) -> None:
        """Append a point to series ``key``; ``step`` defaults to the previous step + 1,
        ``timestamp`` (seconds or datetime) to now. NaN and ±Inf are kept exactly."""
        writer = self._writer
        series = writer.series.get(key)
        if series is None or not self._active:
            series = self._open_series(key)
        if value.__class__ is not float:
            value = self._coerce_value(key, value)
        if step is None:
            step = series.next_step
            if step >= 0x4000000000000000:  # STEP_LIMIT; a default step only grows
                raise UsageError(f"the next step of metric {key!r} would be 2**62 or more; steps must lie strictly "
                                 "between -2**62 and 2**62")
        else:
            if step.__class__ is not int:
                step = self._coerce_step(step)
            if not -0x4000000000000000 < step < 0x4000000000000000:  # STEP_LIMIT, as a constant: no lookup
                raise UsageError(f"step {step} of metric {key!r} is out of range; steps must lie strictly between "
                                 "-2**62 and 2**62")
        now = time.time()
        stamp = int(now * 1000) if timestamp is None else _to_ms(timestamp)
        series.steps.append(step)
        series.next_step = step + 1
        series.stamps.append(stamp)
        series.values.append(value)
        writer.buffered += 1
        if writer.buffered >= writer.spill_points or now >= writer.spill_due:
            writer.on_interval(now)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, timestamp: Any = None) -> None:
        if not isinstance(metrics, dict):
            raise UsageError("metrics must be a dict of key -> number")
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp)

    def _open_series(self, key: str) -> SeriesBuffer:
        self._require_active("log metrics")
        check_key(key, "metric key")
        series = self._writer.series.get(key)
        if series is None:
            series = self._writer.series[key] = SeriesBuffer()
            summary = self._state.metrics.get(key)
            if summary is not None:
                series.next_step = summary.step + 1
        return series

    @staticmethod
    def _coerce_value(key: str, value: Any) -> float:
        if isinstance(value, bool) or not hasattr(value, "__float__"):
            raise UsageError(f"metric {key!r} must be a number, got {type(value).__name__}")
        try:
            return float(value)
        except (OverflowError, ValueError, TypeError) as exc:
            raise UsageError(f"metric {key!r} cannot be stored as a float64: {exc}") from exc

    @staticmethod
    def _coerce_step(step: Any) -> int:
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise UsageError(f"step must be an integer, got {type(step).__name__}")
        return int(step.__index__())

    def get_metric(self, key: str) -> float | None:
        """The latest logged value of ``key`` (None if never logged)."""
        series = self._writer.series.get(key)
        if series is not None and series.values:
            return series.values[-1]
        summary = self._state.metrics.get(key)
        return summary.value if summary is not None else None

    def get_metric_history(self, key: str) -> list[MetricPoint]:
        """Every point of ``key`` in logging order: ``(step, timestamp_ms, value)``."""
        writer, odb = self._writer, self._store.git.odb
        points = reading.metric_history(self._store.ledger, self.id, key) if writer.stored else []
        pending = [odb.read_typed(oid, "blob") for oid in writer.pending_chunks.get(key, [])]
        points += reading.metric_history_from_blobs(pending)
        series = writer.series.get(key)
        if series is not None:
            points += [MetricPoint(*p) for p in zip(series.steps, series.stamps, series.values, strict=True)]
        return points

    def get_metric_keys(self) -> list[str]:
        return sorted(set(self._state.metrics) | {k for k, s in self._writer.series.items() if s.values})

    def get_metrics(self) -> dict[str, float]:
        """The latest value of every metric, by key (Verta's ``get_metrics()``)."""
        return {key: self.get_metric(key) for key in self.get_metric_keys()}  # type: ignore[misc]

    # -- observations ------------------------------------------------------------
    def log_observation(self, key: str, value: Any, timestamp: Any = None, epoch_num: int | None = None) -> int:
        """Record an observation (any JSON value); epochs count up per key."""
        self._require_active("log observations")
        check_key(key, "observation key")
        check_json_value(value, f"observation {key!r}")
        count = self._state.observations.get(key, 0)
        epoch = count if epoch_num is None else self._coerce_step(epoch_num)
        stamp = _now_ms() if timestamp is None else _to_ms(timestamp)
        self._writer.observations.setdefault(key, []).append((epoch, stamp, value))
        self._state.observations[key] = max(count, epoch) + 1
        self._writer.dirty = True
        return epoch

    def _observation_series(self, key: str) -> list[Observation]:
        writer = self._writer
        stored = reading.observations(self._store.ledger, self.id, key) if writer.stored else []
        return stored + [Observation(*o) for o in writer.observations.get(key, [])]

    def get_observations(self, key: str | None = None) -> Any:
        """The observations of ``key`` in logging order (``(epoch, timestamp_ms, value)``);
        with no key, every series by key (Verta's ``get_observations()``)."""
        if key is None:
            keys = sorted(set(self._state.observations) | set(self._writer.observations))
            return {k: self._observation_series(k) for k in keys}
        return self._observation_series(key)

    def get_observation(self, key: str) -> list[Observation]:
        """The observation series ``key``, a list, as Verta's ``get_observation`` returns;
        the latest value alone is ``get_latest_observation``."""
        return self._observation_series(key)

    def get_latest_observation(self, key: str) -> Any:
        """The value of the latest observation of ``key`` (None if never logged)."""
        found = self._observation_series(key)
        return found[-1].value if found else None
