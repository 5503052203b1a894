"""Recording lineage: which models, datasets and run artifacts a run consumed and produced.

Record it fluently and additively::

    gitprov.lineage.of(run).with_input_model("bert", "v3").with_output_model("clf", "1").register()

It is stored in the run's ``state`` (``RunState.lineage``), keyed ``model:<name>``,
``run:<run id>`` and ``dataset:<key>``, each mapping to a sorted list of versions, paths
or digests (an empty list: the model or run without a version or path). Registering is
additive and idempotent; on an ended run it is a metadata write, like tags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from ..nodes import DATASET, MODEL, RUN, check_run_prefix, lineage_label

if TYPE_CHECKING:
    from .run import Run

__all__ = ["Inputs", "LineageBuilder", "Outputs", "inputs_of", "of", "outputs_of"]


class _Side:
    """One side of a run's lineage: models, runs (artifacts) and datasets."""

    def __init__(self, stored: dict[str, list[str]] | None = None) -> None:
        self.models: dict[str, set[str]] = {}
        self.runs: dict[str, set[str]] = {}
        self.datasets: dict[str, set[str]] = {}
        for key, items in (stored or {}).items():
            kind, _, name = key.partition(":")
            target = {MODEL: self.models, RUN: self.runs, DATASET: self.datasets}.get(kind)
            if target is not None:
                target.setdefault(name, set()).update(items)

    @property
    def runs_by_path(self) -> dict[str, set[str]]:
        """Path in a run -> the ids of the runs it came from."""
        out: dict[str, set[str]] = {}
        for run_id, paths in self.runs.items():
            for path in paths:
                out.setdefault(path, set()).add(run_id)
        return out

    def to_stored(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for kind, source in ((MODEL, self.models), (RUN, self.runs), (DATASET, self.datasets)):
            for name, items in source.items():
                out[f"{kind}:{name}"] = sorted(items)
        return dict(sorted(out.items()))

    def __bool__(self) -> bool:
        return bool(self.models or self.runs or self.datasets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(models={self.models}, runs={self.runs}, datasets={self.datasets})"


class Inputs(_Side):
    """What a run consumed."""


class Outputs(_Side):
    """What a run produced."""


def inputs_of(run: Run) -> Inputs:
    return Inputs(run.state.lineage.inputs)


def outputs_of(run: Run) -> Outputs:
    return Outputs(run.state.lineage.outputs)


class LineageBuilder:
    """Collects lineage for one run; ``register()`` stores it (additively)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.inputs = Inputs()
        self.outputs = Outputs()

    def _model(self, side: _Side, name: str, version: str | int | None) -> LineageBuilder:
        items = side.models.setdefault(lineage_label(name, "model name"), set())
        if version is not None:
            items.add(lineage_label(version, "model version"))
        return self

    def _artifact(self, side: _Side, run_id: str, path_in_run: str | None) -> LineageBuilder:
        items = side.runs.setdefault(self._resolve(run_id), set())
        if path_in_run is not None:
            items.add(lineage_label(path_in_run, "path in run"))
        return self

    def _resolve(self, run_id: str) -> str:
        """The full id of a stored run; an unknown id is kept as given (a dangling
        reference ``prov verify`` reports)."""
        from .reading import resolve_run_id

        text = check_run_prefix(run_id)
        if text == self.run.id:
            return text
        try:
            return resolve_run_id(self.run.store.ledger, text)
        except UsageError as exc:
            if "ambiguous" in str(exc):
                raise
            return text

    def with_input_model(self, name: str, version: str | int | None = None) -> LineageBuilder:
        return self._model(self.inputs, name, version)

    def with_output_model(self, name: str, version: str | int | None = None) -> LineageBuilder:
        return self._model(self.outputs, name, version)

    def with_input_artifact(self, run_id: str, path_in_run: str | None = None) -> LineageBuilder:
        return self._artifact(self.inputs, run_id, path_in_run)

    def with_output_artifact(self, run_id: str, path_in_run: str | None = None) -> LineageBuilder:
        return self._artifact(self.outputs, run_id, path_in_run)

    def with_input_dataset(self, key: str, digest: str) -> LineageBuilder:
        self.inputs.datasets.setdefault(lineage_label(key, "dataset key"), set()).add(lineage_label(digest, "dataset digest"))
        return self

    def with_output_dataset(self, key: str, digest: str) -> LineageBuilder:
        self.outputs.datasets.setdefault(lineage_label(key, "dataset key"), set()).add(lineage_label(digest, "dataset digest"))
        return self

    def register(self) -> Run:
        """Merge what was collected into the run's stored lineage (written now for an
        ended run, at the next flush for an active one). Idempotent."""
        from ..model import Lineage

        state = self.run.state
        merged_in = _merge(state.lineage.inputs, self.inputs.to_stored())
        merged_out = _merge(state.lineage.outputs, self.outputs.to_stored())
        if merged_in == state.lineage.inputs and merged_out == state.lineage.outputs:
            return self.run
        state.lineage = Lineage(inputs=merged_in, outputs=merged_out)
        self.run._touch()
        return self.run


def _merge(stored: dict[str, list[str]], new: dict[str, list[str]]) -> dict[str, list[str]]:
    out = {k: list(v) for k, v in stored.items()}
    for key, items in new.items():
        out[key] = sorted(set(out.get(key, [])) | set(items))
    return dict(sorted(out.items()))


def of(run: Run) -> LineageBuilder:
    """Start recording lineage for ``run`` (active or stored)."""
    if not hasattr(run, "state") or not hasattr(run, "_touch"):
        raise UsageError(f"lineage.of() takes a Run, got {type(run).__name__}")
    return LineageBuilder(run)
