"""``Query``: a MongoDB-style query on lineage, what ``Repository.find_runs`` takes.

A pydantic model like the other lineage models (``runs/lineage.py``), so importing this
module loads pydantic: nothing on a hot path imports it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..errors import UsageError
from ..nodes import check_run_prefix, lineage_label
from ..runs.lineage import LineageModel

__all__ = ["Query"]


class Query(LineageModel):
    """Builds a MongoDB-style query on lineage; a left-out version or path matches any."""

    clauses: list[dict[str, Any]] = Field(
        default_factory=list, description="conditions that must all hold, in the order they were added")

    def _add(self, field: str, item: str | int | None, what: str) -> Query:
        if item is None:
            self.clauses.append({field: {"$exists": True}})
        else:
            self.clauses.append({field: lineage_label(item, what)})
        return self

    def with_input_model(self, name: str, version: str | int | None = None) -> Query:
        return self._add(f"inputs.models.{lineage_label(name, 'model name')}", version, "model version")

    def with_output_model(self, name: str, version: str | int | None = None) -> Query:
        return self._add(f"outputs.models.{lineage_label(name, 'model name')}", version, "model version")

    def with_input_artifact(self, run_id: str, path_in_run: str | None = None) -> Query:
        return self._add(f"inputs.runs.{check_run_prefix(run_id)}", path_in_run, "path in run")

    def with_output_artifact(self, run_id: str, path_in_run: str | None = None) -> Query:
        return self._add(f"outputs.runs.{check_run_prefix(run_id)}", path_in_run, "path in run")

    def with_input_dataset(self, key: str, digest: str | None = None) -> Query:
        return self._add(f"inputs.datasets.{lineage_label(key, 'dataset key')}", digest, "dataset digest")

    def with_output_dataset(self, key: str, digest: str | None = None) -> Query:
        return self._add(f"outputs.datasets.{lineage_label(key, 'dataset key')}", digest, "dataset digest")

    def where(self, condition: dict[str, Any]) -> Query:
        """Add any other condition (``{"metrics.acc": {"$gte": 0.9}}``)."""
        if not isinstance(condition, dict):
            raise UsageError("Query.where() takes a dict")
        self.clauses.append(condition)
        return self

    def render(self) -> dict[str, Any]:
        if not self.clauses:
            return {}
        if len(self.clauses) == 1:
            return dict(self.clauses[0])
        return {"$and": [dict(c) for c in self.clauses]}
