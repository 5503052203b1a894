"""Starting a run: its immutable record (code version, params, environment, command,
schema pin), its id (the object id of the record's canonical bytes) and its journal."""

from __future__ import annotations

import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

from .. import codec
from .._util.clock import utc_timestamp
from ..errors import UsageError
from ..keys import check_json_value, check_key, check_label
from ..model import RunRecord, RunState
from .run import Run
from .writer import RunSettings

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["start_run"]


def start_run(
    store: ProvStore,
    name: str = "",
    experiment: str = "",
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | list[str] | None = None,
    *,
    code: bool = True,
    environment: bool = True,
    command: list[str] | None = None,
    exec_path: str | None = None,
    parent: str | None = None,
    spill_points: int = 100_000,
    spill_seconds: float = 5.0,
    flush_seconds: float = 30.0,
    artifact_threshold: int = 10 << 20,
) -> Run:
    """An active run pinned to HEAD (with uncommitted changes as a patch when ``code``).

    Inside ``prov run``, the wrapping run (``PROV_RUN_ID``) becomes the parent.
    """
    from ..schema import current_pin
    from ..settings import scrubber
    from ..store.journal import Journal
    from .code import code_version, head_code_version

    settings = RunSettings(spill_points, spill_seconds, flush_seconds, artifact_threshold)
    check_label(name, "run name")
    check_label(experiment, "run experiment")
    if params is not None and not isinstance(params, dict):
        raise UsageError(f"params must be a dict of key -> value, not {type(params).__name__}")
    params = dict(params or {})
    for key, value in params.items():
        check_key(key, "hyperparameter key")
        check_json_value(value, f"hyperparameter {key!r}")
    rules = scrubber(store.work_tree)
    params = rules.redact_params(params, store.redaction_key)
    env = None
    if environment:
        from ..fingerprint import environment as fingerprint_environment

        env = fingerprint_environment()
    git = store.git
    record = RunRecord(
        created=utc_timestamp(),
        nonce=secrets.token_hex(8),
        name=name,
        experiment=experiment,
        code=code_version(git, exec_path) if code else head_code_version(git, exec_path),
        params=params,
        environment=env,
        command=rules.scrub_argv(list(command)) if command else [],
        parent=parent or os.environ.get("PROV_RUN_ID") or None,
        schema=current_pin(),
        user=_identity(git),
        host=socket.gethostname() if environment else "",
    )
    record_bytes = codec.encode(record)
    run_id = git.fmt.hash_object("blob", record_bytes)
    journal = None
    folder = store.journal_dir()
    if folder is not None:
        journal = Journal.create(folder, run_id, {"run": run_id, "record": record_bytes, "pid": os.getpid()})
    run = Run(store, run_id, record, RunState(name=name, experiment=experiment),
              settings=settings, journal=journal, stored=False, active=True)
    if tags:
        run.log_tags(tags)
    return run


def _identity(git: Any) -> str:
    """``Name <email>``: the identity git would commit with (empty when git would fail)."""
    from ..store.ident import committer

    ident = committer(git.config)
    return f"{ident[0]} <{ident[1]}>" if ident else ""
