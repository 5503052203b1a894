"""The public lineage API: record a run's inputs and outputs with ``of(run)``
(``runs/lineage.py``: how it is stored), read them with ``inputs_of`` / ``outputs_of``,
and find runs with ``Query`` (``index/lineage_query.py``). The models are pydantic
models, as in mlopus.
"""

from __future__ import annotations

from .index.lineage_query import Query
from .runs.lineage import Inputs, Lineage, LineageBuilder, Outputs, inputs_of, of, outputs_of

__all__ = ["Inputs", "Lineage", "LineageBuilder", "Outputs", "Query", "inputs_of", "of", "outputs_of"]
