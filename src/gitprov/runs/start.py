"""Starting a run: its immutable record (code version, params, environment, command,
schema pin), its id (the object id of the record's canonical bytes) and its journal."""

from __future__ import annotations

import os
import secrets
import sys
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
    launcher: str | None = None,
    cwd: str | None = None,
    reproduces: str | None = None,
    spill_points: int = 100_000,
    spill_seconds: float = 5.0,
    flush_seconds: float = 30.0,
    artifact_threshold: int = 10 << 20,
) -> Run:
    """An active run pinned to HEAD (with uncommitted changes as a patch when ``code``).

    Inside ``prov run``, the wrapping run (``PROV_RUN_ID``) becomes the parent. Without
    a ``command``, the command line of the script (``python train.py …``) is recorded
    with the working directory, so ``prov rerun`` can execute it again; a notebook or an
    interactive session is recorded as such (it cannot be rerun). Under ``prov rerun``
    (``PROV_REPRODUCES``), the first run of the process records the run it reproduces
    and takes the overridden params (``PROV_PARAMS``).
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
    if command is None:
        launcher, command = _launch() if launcher is None else (launcher, None)
        if reproduces is None and launcher == "script":
            reproduces, overrides = _rerun_context()
            params.update(overrides)
    elif launcher is None:
        launcher = "command"
    for key, value in params.items():
        check_key(key, "hyperparameter key")
        check_json_value(value, f"hyperparameter {key!r}")
    rules = scrubber(store.work_tree)
    params = rules.redact_params(params, store.redaction_key)
    env = dists = None
    if environment:
        from ..fingerprint import distributions
        from ..fingerprint import environment as fingerprint_environment

        dists = distributions()
        env = fingerprint_environment(dists=dists)
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
        launcher=launcher,
        cwd=_work_dir(store.work_tree) if cwd is None else cwd,
        packages="\n".join(dists) if dists is not None else None,
        reproduces=reproduces,
        recorded_by=_recorder(git.config),
    )
    record_bytes = codec.encode(record)
    run_id = git.fmt.hash_object("blob", record_bytes)
    journal = None
    folder = store.journal_dir()
    if folder is not None:
        journal = Journal.create(folder, run_id, {"run": run_id, "record": record_bytes, "pid": os.getpid()})
    run = Run(store, run_id, record, RunState(name=name, experiment=experiment),
              settings=settings, journal=journal, stored=False, active=True)
    if environment and launcher != "command":  # a wrapped command's generators live in another process
        from .seeds import generator_states

        states = generator_states()
        if states:
            run.state.attributes["prov.seeds"] = states
    if tags:
        run.log_tags(tags)
    return run


def _recorder(config: Any) -> str | None:
    """``Name <email>`` git would commit with (what the ledger commit will carry)."""
    from ..store.ident import committer

    who = committer(config)
    return f"{who[0]} <{who[1]}>" if who is not None else None


def _launch() -> tuple[str, list[str] | None]:
    """How this process was started, and the command line that starts it again (a
    script's, with ``python`` for the interpreter; None for a session)."""
    if "ipykernel" in sys.modules:
        return "notebook", None
    main = sys.modules.get("__main__")
    argv = list(sys.argv)
    if hasattr(sys, "ps1") or sys.flags.interactive or not argv or argv[0] in ("", "-", "-c") \
            or getattr(main, "__file__", None) is None:
        return "interactive", None
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        module = spec.name[:-len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return "script", ["python", "-m", module, *argv[1:]]
    return "script", ["python", *argv]


def _work_dir(work_tree: str | None) -> str | None:
    """The working directory relative to the work tree (None when outside it)."""
    if not work_tree:
        return None
    try:
        here = os.getcwd()
    except OSError:
        return None
    rel = os.path.relpath(here, work_tree)
    return None if rel == ".." or rel.startswith(".." + os.sep) else rel.replace(os.sep, "/")


#: whether this process's first run took the ``prov rerun`` context already
_rerun_taken = False


def _rerun_context() -> tuple[str | None, dict[str, Any]]:
    """``(run reproduced, param overrides)`` given by ``prov rerun`` to the first run of
    the process it executes; ``(None, {})`` otherwise."""
    global _rerun_taken
    reproduces = os.environ.get("PROV_REPRODUCES")
    if _rerun_taken or not reproduces:
        return None, {}
    _rerun_taken = True
    import msgspec

    try:
        overrides = msgspec.json.decode(os.environ.get("PROV_PARAMS") or "{}")
    except msgspec.DecodeError:
        overrides = {}
    return reproduces, overrides if isinstance(overrides, dict) else {}
