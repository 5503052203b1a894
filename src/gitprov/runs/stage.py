"""Pipeline stages: named steps of a run with a cache key.

``with run.stage("featurize", params={...}, inputs={...}) as stage:`` records, at exit,
the stage's ``args_hash`` (content hash of its params: canonical bytes, so stable
across processes), the hashes of its inputs and their combined hash, the digests of
the outputs the code put in ``stage.outputs``, the code commit and the status. The
record is the run attribute ``prov.stage/<name>`` (``prov.*`` attributes are git-prov's
own), so it is stored and indexed like any attribute.

Its ``cache_key`` covers the stage name, the arguments and the inputs (runs by their
stored version, artifacts by sha256, files and directories by content) and, when
asked, the code (``code=True``: commit and uncommitted patch) and the data
(``data=True``: the run's dataset versions, or a dict of paths or digests).
``Repository.find_cached(stage)`` (or with the pieces of the key) returns a finished
stage only when the whole key matches.
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

__all__ = ["STAGE_PREFIX", "CachedStage", "Stage", "args_hash", "cache_key", "code_digest", "combined_hash",
           "data_digests", "inputs_digests"]

STAGE_PREFIX = "prov.stage/"


def args_hash(params: dict[str, Any] | None) -> str:
    """``sha256:<hex>`` of the canonical bytes of ``params``."""
    return "sha256:" + hashlib.sha256(codec.encode(params or {})).hexdigest()


def combined_hash(hashes: dict[str, str]) -> str:
    """One hash over named hashes (order-independent)."""
    return "sha256:" + hashlib.sha256(codec.encode(dict(sorted(hashes.items())))).hexdigest()


def cache_key(name: str, args: str, inputs_hash: str | None, code: str | None = None,
              data_hash: str | None = None) -> str:
    """The stage cache key: one hash over the name, arguments, inputs and, when
    covered, the code and the data."""
    parts = {"name": name, "args": args, "inputs": inputs_hash or ""}
    if code is not None:
        parts["code"] = code
    if data_hash is not None:
        parts["data"] = data_hash
    return combined_hash(parts)


def code_digest(commit: str | None, patch: str | None) -> str:
    """The code a stage ran: its commit, and the blob id of its uncommitted patch."""
    return f"{commit or 'no-commit'}+{patch}" if patch else (commit or "no-commit")


def inputs_digests(inputs: Any) -> dict[str, str]:
    """Name -> digest of stage inputs given as ``Stage`` takes them (a dict, or a list of runs)."""
    if inputs is None:
        return {}
    if isinstance(inputs, (list, tuple)):  # e.g. the runs a stage aggregates
        inputs = {getattr(v, "id", str(i)): v for i, v in enumerate(inputs)}
    if not isinstance(inputs, dict):
        raise UsageError("stage inputs must be a dict of name -> Run, path, bytes or digest, or a list of runs")
    return {k: _digest(None, k, v, "input") for k, v in inputs.items()}


def data_digests(data: Any) -> dict[str, str]:
    """Dataset key -> digest of a dict of paths or digests (as ``log_dataset_version`` takes)."""
    if not isinstance(data, dict):
        raise UsageError("data must be a dict of dataset key -> path or digest (or True in run.stage: the "
                         "run's dataset versions)")
    return {check_key(k, "dataset key"): _digest(None, k, v, "data") for k, v in data.items()}


def _digest(run: Run | None, name: str, value: Any, what: str) -> str:
    """The content hash of an input or output: a Run (its version: the tree id of its
    directory in the ledger), a file or directory path, bytes, an artifact reference,
    or a digest given as a string."""
    from ..model import ArtifactRef
    from .run import Run as RunClass

    if isinstance(value, RunClass):
        version = value.store.ledger.run_version(value.id)
        return f"run:{version or value.id}"
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

    def __init__(self, run: Run, name: str, params: dict[str, Any] | None, inputs: dict[str, Any] | list[Any] | None,
                 *, code: bool = False, data: bool | dict[str, Any] = False) -> None:
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
        self.inputs = inputs_digests(inputs)
        self.input_runs = [v.id for v in (inputs.values() if isinstance(inputs, dict) else inputs or [])
                           if hasattr(v, "_touch")]
        self.inputs_hash = combined_hash(self.inputs) if self.inputs else None
        ran = run.get_code()
        #: the code covered by the cache key (``code=True``), else None
        self.code = code_digest(ran.commit, ran.patch) if code else None
        if data is True:
            self.data: dict[str, str] | None = {k: v.digest for k, v in run.get_dataset_versions().items()}
        else:
            self.data = data_digests(data) if data is not False and data is not None else None
        self.data_hash = combined_hash(self.data) if self.data is not None else None
        self.cache_key = cache_key(self.name, self.args_hash, self.inputs_hash, self.code, self.data_hash)
        #: managed cache paths handed out by get_path / get_dir: name -> path
        self.paths: dict[str, str] = {}
        #: filled by the code in the ``with`` block: name -> path, bytes, artifact or digest
        self.outputs: dict[str, Any] = {}
        self.status = "running"
        self.started = _now()

    def __enter__(self) -> Stage:
        return self

    @property
    def covers(self) -> list[str]:
        """What the cache key covers: ``args``, ``inputs`` and, when asked, ``code``, ``data``."""
        return ["args", "inputs"] + (["code"] if self.code is not None else []) + (
            ["data"] if self.data is not None else [])

    def get_path(self, name: str) -> str:
        """A path for a file ``name`` in this stage's managed cache directory (named by
        its cache key; the directory is created, the file is not). Files there at the
        end of the stage are recorded with their digests (``cache_files``)."""
        from .stage_cache import cache_path

        path = cache_path(self.run.store, self.cache_key, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.paths[name] = path
        return path

    def get_dir(self, name: str) -> str:
        """Like ``get_path``, for a directory, which is created."""
        path = self.get_path(name)
        os.makedirs(path, exist_ok=True)
        return path

    def report(self, path: str | os.PathLike[str] | None = None, title: str | None = None) -> str:
        """Write a self-contained HTML report (``prov report``) of this stage's run and
        the runs it took as inputs, opening on the stage's run, to ``path`` (default
        ``report-<stage>-<run id12>.html``); returns its path. Needs the ui extra."""
        return _stage_report(self.run, self.name, self.input_runs, path, title)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.status = "finished" if exc_type is None else "failed"
        try:
            outputs = {k: _digest(self.run, check_key(k, "stage output"), v, "output") for k, v in self.outputs.items()}
        except UsageError:
            if exc_type is None:
                raise
            outputs = {}
        cache_files = {k: _digest(None, k, p, "cache file") for k, p in self.paths.items()
                       if os.path.isfile(p) or (os.path.isdir(p) and any(os.scandir(p)))}
        code = self.run.get_code()
        record = {
            "name": self.name, "args_hash": self.args_hash, "params": self.params,
            "inputs": self.inputs, "inputs_hash": self.inputs_hash, "input_runs": self.input_runs,
            "cache_key": self.cache_key, "covers": self.covers, "cache_files": cache_files,
            **({"code": self.code} if self.code is not None else {}),
            **({"data": self.data, "data_hash": self.data_hash} if self.data is not None else {}),
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
        self.covers: list[str] = record.get("covers", ["args", "inputs"])
        self.cache_key: str = record.get("cache_key") or cache_key(
            self.name, self.args_hash, self.inputs_hash)

        #: the files the stage left in its managed cache directory: name -> digest
        self.cache_files: dict[str, str] = record.get("cache_files", {})

    def cache_dir(self) -> str:
        """The stage's managed cache directory (``Stage.get_path``'s), where its run left
        its files: ``.git/prov/stage-cache/<cache key hex>/``."""
        from .stage_cache import cache_dir

        return cache_dir(self.run.store, self.cache_key)

    def get_path(self, name: str) -> str:
        """The path of the cached file (or directory) ``name`` the stage's run left;
        a ``DataError`` when it is gone or changed since (another clone, a cleanup)."""
        from ..errors import DataError
        from .stage_cache import cache_path

        path = cache_path(self.run.store, self.cache_key, name)
        digest = self.cache_files.get(name)
        if digest is None:
            raise UsageError(f"stage {self.name!r} of run {self.run_id[:12]} left no cache file {name!r}; it left "
                             f"{sorted(self.cache_files)}")
        if not os.path.exists(path) or _digest(None, name, path, "cache file") != digest:
            raise DataError(f"cache file {name!r} of stage {self.name!r} (run {self.run_id[:12]}) is missing or "
                            "changed in this clone; run the stage again")
        return path

    get_dir = get_path

    def report(self, path: str | os.PathLike[str] | None = None, title: str | None = None) -> str:
        """``Stage.report`` of the stage as its run recorded it."""
        return _stage_report(self.run, self.name, self.record.get("input_runs", []), path, title)

    def __repr__(self) -> str:
        return f"<CachedStage {self.name} {self.args_hash[:19]} from run {self.run_id[:12]}>"


def _stage_report(run: Run, name: str, input_runs: list[str], path: str | os.PathLike[str] | None,
                  title: str | None) -> str:
    from .run import write_report

    if run._active:
        run.flush()
    ids = list(dict.fromkeys([run.id, *input_runs]))
    return write_report(run.store, ids, path or f"report-{name.replace('/', '-')}-{run.id[:12]}.html",
                        title or f"git-prov report: stage {name} of {run.name or run.id[:12]}", "Stage.report",
                        start=run.id)


def _now() -> str:
    from .._util.clock import utc_timestamp

    return utc_timestamp()
