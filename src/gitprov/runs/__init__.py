"""Run tracking: experiment runs recorded in the repository's ledger."""

from .reading import MetricPoint, Observation
from .run import Run, RunSettings

__all__ = ["MetricPoint", "Observation", "Run", "RunSettings"]
