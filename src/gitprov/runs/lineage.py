"""Recording lineage: which models, datasets and run artifacts a run consumed and produced.

Record it fluently and additively::

    gitprov.lineage.of(run).with_input_model("bert", "v3").with_output_model("clf", "1").register()

It is stored in the run's ``state`` (``RunState.lineage``), keyed ``model:<name>``,
``run:<run id>`` and ``dataset:<key>``, each mapping to a sorted list of versions, paths
or digests (an empty list: the model or run without a version or path). Registering is
additive and idempotent; on an ended run it is a metadata write, like tags.

``Inputs``, ``Outputs``, ``Lineage`` and ``LineageBuilder`` are pydantic models, as the
lineage models of mlopus are (``model_dump``, ``model_validate``, ``model_json_schema``);
a failed validation is one ``UsageError`` naming every invalid field. pydantic is
imported here at module level, so nothing on a hot path (``import gitprov``, the hooks,
``start_run``/``log_metric``/``end``) imports this module: ``runs/stage.py`` and
``sync/wandb_bridge.py`` import it inside the function that needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
)

from ..errors import UsageError
from ..nodes import DATASET, MODEL, RUN, check_run_prefix, lineage_label

if TYPE_CHECKING:
    from .run import Run

__all__ = ["Inputs", "Lineage", "LineageBuilder", "LineageModel", "Outputs", "inputs_of", "of", "outputs_of"]


def _field_errors(exc: ValidationError) -> str:
    """Every error of ``exc`` on one line: ``location: message``, joined with ``'; '``."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) if str(p).isprintable() and str(p) else repr(p) for p in err["loc"])
        # a ValueError of a validator (the nodes checks) carries the full sentence
        msg = str(err["ctx"]["error"]) if err["type"] == "value_error" else err["msg"]
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


@contextmanager
def _usage_errors(cls: type) -> Iterator[None]:
    try:
        yield
    except ValidationError as exc:
        raise UsageError(f"invalid {cls.__name__}: {_field_errors(exc)}") from exc


class LineageModel(BaseModel):
    """Base of the lineage models: unknown fields are refused, and a failed validation
    (constructor, ``model_validate``, ``model_validate_json``) raises one ``UsageError``
    naming every invalid field, not pydantic's ``ValidationError``."""

    model_config = ConfigDict(extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        with _usage_errors(type(self)):
            super().__init__(**data)

    # it validates as pydantic's own __init__ does: nested models are validated in one pass
    # (every error reported), not through this method (which would stop at the first)
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors(cls):
            return super().model_validate(*args, **kwargs)

    @classmethod
    def model_validate_json(cls, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors(cls):
            return super().model_validate_json(*args, **kwargs)

    @classmethod
    def model_validate_strings(cls, *args: Any, **kwargs: Any) -> Any:
        with _usage_errors(cls):
            return super().model_validate_strings(*args, **kwargs)


def _checked(check: Callable[..., str], *args: str) -> AfterValidator:
    """A field validator running one of the ``nodes`` checks (its ``UsageError`` becomes
    a field error, reported with the field's location)."""

    def validate(value: str) -> str:
        try:
            return check(value, *args)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    return AfterValidator(validate)


_LABEL = StringConstraints(min_length=1, max_length=250)
_ModelName = Annotated[str, _LABEL, _checked(lineage_label, "model name")]
_ModelVersion = Annotated[str, _LABEL, _checked(lineage_label, "model version")]
_RunId = Annotated[str, _LABEL, _checked(check_run_prefix)]
_PathInRun = Annotated[str, _LABEL, _checked(lineage_label, "path in run")]
_DatasetKey = Annotated[str, _LABEL, _checked(lineage_label, "dataset key")]
_DatasetDigest = Annotated[str, _LABEL, _checked(lineage_label, "dataset digest")]


_S = TypeVar("_S", bound="_Side")


class _Side(LineageModel):
    """One side of a run's lineage: models, runs (artifacts) and datasets."""

    models: dict[_ModelName, set[_ModelVersion]] = Field(
        default_factory=dict, description="model name -> versions (empty: the model without a version)")
    runs: dict[_RunId, set[_PathInRun]] = Field(
        default_factory=dict, description="run id -> paths in that run (empty: the whole run)")
    datasets: dict[_DatasetKey, set[_DatasetDigest]] = Field(
        default_factory=dict, description="dataset key -> digests")

    @classmethod
    def from_stored(cls: type[_S], stored: dict[str, list[str]]) -> _S:
        """From the stored form (``state.lineage.inputs``); read as stored, not
        validated again, so a run written by another version still reads."""
        sides: dict[str, dict[str, set[str]]] = {"models": {}, "runs": {}, "datasets": {}}
        fields = {MODEL: "models", RUN: "runs", DATASET: "datasets"}
        for key, items in stored.items():
            kind, _, name = key.partition(":")
            if kind in fields:
                sides[fields[kind]].setdefault(name, set()).update(items)
        return cls.model_construct(**sides)

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


class Inputs(_Side):
    """What a run consumed."""


class Outputs(_Side):
    """What a run produced."""


def inputs_of(run: Run) -> Inputs:
    return Inputs.from_stored(run.state.lineage.inputs)


def outputs_of(run: Run) -> Outputs:
    return Outputs.from_stored(run.state.lineage.outputs)


_L = TypeVar("_L", bound="Lineage")


class Lineage(LineageModel):
    """A run's lineage: what it consumed and what it produced, added to fluently.

    ``Lineage.of(run)`` is what ``run`` has registered so far, bound to the run (add to
    it and ``register()``); ``Lineage()`` or ``Lineage.model_validate(data)`` is one on
    its own (run ids are checked, not resolved)."""

    inputs: Inputs = Field(default_factory=Inputs, description="what the run consumed")
    outputs: Outputs = Field(default_factory=Outputs, description="what the run produced")

    @classmethod
    def of(cls, run: Run) -> LineageBuilder:
        """The lineage ``run`` (active or stored) has registered so far."""
        builder = of(run)
        builder.inputs, builder.outputs = inputs_of(run), outputs_of(run)
        return builder

    def _add(self: _L, target: dict[str, set[str]], key: str, item: str | int | None, what: str,
             *, optional: bool = True) -> _L:
        if item is None and optional:
            target.setdefault(key, set())
        else:
            label = lineage_label(item, what)
            target.setdefault(key, set()).add(label)
        return self

    def _run_id(self, run_id: str) -> str:
        return check_run_prefix(run_id)

    def with_input_model(self: _L, name: str, version: str | int | None = None) -> _L:
        return self._add(self.inputs.models, lineage_label(name, "model name"), version, "model version")

    def with_output_model(self: _L, name: str, version: str | int | None = None) -> _L:
        return self._add(self.outputs.models, lineage_label(name, "model name"), version, "model version")

    def with_input_artifact(self: _L, run_id: str, path_in_run: str | None = None) -> _L:
        return self._add(self.inputs.runs, self._run_id(run_id), path_in_run, "path in run")

    def with_output_artifact(self: _L, run_id: str, path_in_run: str | None = None) -> _L:
        return self._add(self.outputs.runs, self._run_id(run_id), path_in_run, "path in run")

    def with_input_dataset(self: _L, key: str, digest: str) -> _L:
        return self._add(self.inputs.datasets, lineage_label(key, "dataset key"), digest, "dataset digest", optional=False)

    def with_output_dataset(self: _L, key: str, digest: str) -> _L:
        return self._add(self.outputs.datasets, lineage_label(key, "dataset key"), digest, "dataset digest", optional=False)


class LineageBuilder(Lineage):
    """Lineage bound to one run; ``register()`` stores it (additively). Run ids and
    unique prefixes are resolved in the run's repository."""

    _run: Any = PrivateAttr()

    def __init__(self, run: Run, /, **data: Any) -> None:
        super().__init__(**data)
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def _run_id(self, run_id: str) -> str:
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

    def register(self) -> Run:
        """Merge what was collected into the run's stored lineage (written now for an
        ended run, at the next flush for an active one). Idempotent."""
        from ..model import Lineage as StoredLineage

        state = self.run.state
        merged_in = _merge(state.lineage.inputs, self.inputs.to_stored())
        merged_out = _merge(state.lineage.outputs, self.outputs.to_stored())
        if merged_in == state.lineage.inputs and merged_out == state.lineage.outputs:
            return self.run
        state.lineage = StoredLineage(inputs=merged_in, outputs=merged_out)
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
