"""Pipeline stages: named steps of a run with a cache key.

``with run.stage("featurize", params={...}, inputs={...}) as stage:`` records, at exit,
the stage's ``args_hash`` (content hash of its params: canonical bytes, so stable
across processes), the hashes of its inputs and their combined hash, the digests of
the outputs the code put in ``stage.outputs``, the code commit and the status. The
record is the run attribute ``prov.stage/<name>`` (``prov.*`` attributes are git-prov's
own), so it is stored and indexed like any attribute; ``Repository.find_cached`` looks
it up by stage name, arguments and, optionally, code commit.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import UsageError
from ..keys import check_json_value, check_key

if TYPE_CHECKING:
    from .run import Run

__all__ = ["STAGE_PREFIX", "CachedStage", "Stage", "args_hash", "combined_hash"]

STAGE_PREFIX = "prov.stage/"


def args_hash(params: dict[str, Any] | None) -> str:
    """``sha256:<hex>`` of the canonical bytes of ``params``."""
    return "sha256:" + hashlib.sha256(codec.encode(params or {})).hexdigest()


def combined_hash(hashes: dict[str, str]) -> str:
    """One hash over named hashes (order-independent)."""
    return "sha256:" + hashlib.sha256(codec.encode(dict(sorted(hashes.items())))).hexdigest()


def _digest(run: Run, name: str, value: Any, what: str) -> str:
    """The content hash of an input or output: a Run (its version: the tree id of its
    directory in the ledger), a file or directory path, bytes, an artifact reference,
    or a digest given as a string."""
    from ..model import ArtifactRef
    from .run import Run as RunClass

    if isinstance(value, RunClass):
        tree = value.store.ledger.list_dir(f"runs/{value.id[:2]}").get(value.id)
        return f"run:{tree.oid if tree is not None else value.id}"
    if isinstance(value, ArtifactRef):
        return f"sha256:{value.sha256}" if not value.sha256.startswith("sha256:") else value.sha256
    if isinstance(value, (bytes, bytearray)):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, os.PathLike) or (isinstance(value, str) and os.path.exists(value)):
        path = os.fspath(value)
        if os.path.isdir(path):
            from .artifacts import directory_digest

            return directory_digest(path)[0]
        if os.path.isfile(path):
            from .inputs import sha256_file

            return "sha256:" + sha256_file(path)
        raise UsageError(f"stage {what} {name!r}: {path!r} does not exist")
    if isinstance(value, str) and value and len(value) <= 200 and not any(ord(c) < 33 for c in value):
        from .inputs import looks_like_a_path

        if looks_like_a_path(value):
            raise UsageError(f"stage {what} {name!r}: {value!r} does not exist; pass an existing path, or a digest "
                             "such as sha256:<hex>")
        return value
    raise UsageError(f"stage {what} {name!r} must be a Run, a path, bytes, an artifact or a digest string, "
                     f"not {type(value).__name__}")


class Stage:
    """One named stage of an active run; use as a context manager."""

    def __init__(self, run: Run, name: str, params: dict[str, Any] | None, inputs: dict[str, Any] | list[Any] | None) -> None:
        run._require_active("record a stage")
        self.run = run
        self.name = check_key(name, "stage name")
        if params is not None and not isinstance(params, dict):
            raise UsageError("stage params must be a dict")
        check_json_value(dict(params or {}), f"params of stage {name!r}")
        from ..settings import scrubber

        store = run.store
        self.params = scrubber(store.work_tree).redact_params(dict(params or {}), store.redaction_key)
        self.args_hash = args_hash(self.params)
        if isinstance(inputs, (list, tuple)):  # e.g. the runs a stage aggregates
            inputs = {getattr(v, "id", str(i)): v for i, v in enumerate(inputs)}
        if inputs is not None and not isinstance(inputs, dict):
            raise UsageError("stage inputs must be a dict of name -> Run, path, bytes or digest, or a list of runs")
        self.input_runs = [v.id for v in (inputs or {}).values() if hasattr(v, "_touch")]
        self.inputs = {k: _digest(run, k, v, "input") for k, v in (inputs or {}).items()}
        self.inputs_hash = combined_hash(self.inputs) if self.inputs else None
        #: filled by the code in the ``with`` block: name -> path, bytes, artifact or digest
        self.outputs: dict[str, Any] = {}
        self.status = "running"
        self.started = _now()

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.status = "finished" if exc_type is None else "failed"
        try:
            outputs = {k: _digest(self.run, check_key(k, "stage output"), v, "output") for k, v in self.outputs.items()}
        except UsageError:
            if exc_type is None:
                raise
            outputs = {}
        code = self.run.get_code()
        record = {
            "name": self.name, "args_hash": self.args_hash, "params": self.params,
            "inputs": self.inputs, "inputs_hash": self.inputs_hash, "input_runs": self.input_runs,
            "outputs": outputs, "commit": code.commit, "dirty": bool(code.is_dirty),
            "status": self.status, "started": self.started, "ended": _now(),
        }
        self.run.log_attributes({STAGE_PREFIX + self.name: record}, overwrite=True)
        if self.input_runs:
            from .lineage import of

            builder = of(self.run)
            for run_id in self.input_runs:
                builder.with_input_artifact(run_id)
            builder.register()


class CachedStage:
    """A stage found by ``Repository.find_cached``: its record and the run that made it."""

    def __init__(self, record: dict[str, Any], run: Run) -> None:
        self.record = record
        self.run = run
        self.run_id = run.id
        self.name: str = record["name"]
        self.args_hash: str = record["args_hash"]
        self.params: dict[str, Any] = record.get("params", {})
        self.inputs: dict[str, str] = record.get("inputs", {})
        self.inputs_hash: str | None = record.get("inputs_hash")
        self.outputs: dict[str, str] = record.get("outputs", {})
        self.commit: str | None = record.get("commit")

    def __repr__(self) -> str:
        return f"<CachedStage {self.name} {self.args_hash[:19]} from run {self.run_id[:12]}>"


def _now() -> str:
    from .._util.clock import utc_timestamp

    return utc_timestamp()
