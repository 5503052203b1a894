"""Auto-sync: after a commit, mirror runs to the trackers named in ``prov.sync.auto``.

Two halves sharing three files under ``.git/prov/sync/``:

- ``start`` runs inside the post-commit hook and must not delay the commit: it writes
  ``auto.pending`` and, unless a runner is alive (``auto.lock`` holds its pid), spawns
  one detached (own session, stdin from /dev/null, output appended to ``auto.log``)
  and returns. Standard library only, no ``subprocess`` where ``posix_spawn`` exists.
- ``run`` is that runner (``prov sync auto``): it takes ``auto.lock``, clears the
  pending mark, syncs every configured target, releases the lock and goes round again
  if a commit marked ``auto.pending`` meanwhile. A burst of commits therefore costs one
  runner and at most one extra round, never a pile of syncs.

The mark is written before the lock is looked at, and the runner looks at the mark
after releasing the lock, so a commit is never left unsynced between the two.
"""

from __future__ import annotations

import os
import sys

from .._util.logfile import trim
from .._util.pidlock import holder, take
from ..errors import ConfigError

TYPE_CHECKING = False  # typing is not imported at run time: hook path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..store.config import GitConfig
    from ..store.prov_store import ProvStore
    from ..store.repo import GitRepository

__all__ = ["AUTO_KEY", "LOCK", "LOG", "PENDING", "configured_targets", "run", "start"]

AUTO_KEY = "prov.sync.auto"
TARGETS = ("mlflow", "wandb")
LOG, LOCK, PENDING = "auto.log", "auto.lock", "auto.pending"
_OFF = ("", "false", "off", "no", "0", "none")
_LOG_LIMIT = 1024 * 1024
_RUNNER = (
    "import sys\n"
    "if sys.path and sys.path[0] in ('', '.'):\n"
    "    del sys.path[0]\n"
    "from gitprov.cli.entry import main\n"
    "sys.exit(main(['sync', 'auto']))\n"
)


def configured_targets(config: GitConfig) -> list[str]:
    """The targets ``prov.sync.auto`` names (``mlflow``, ``wandb`` or both; empty: off)."""
    raw = config.get(AUTO_KEY)
    if raw is None or raw.strip().lower() in _OFF:
        return []
    names = [n.lower() for n in raw.replace(",", " ").split()]
    bad = [n for n in names if n not in TARGETS]
    if bad:
        raise ConfigError(f"git config {AUTO_KEY} = {raw!r}: {', '.join(bad)} is not a sync target; "
                          "use mlflow, wandb or 'mlflow wandb'")
    return list(dict.fromkeys(names))


def _directory(git: GitRepository) -> str:
    prov_dir = git.prov_dir()
    if prov_dir is None:
        raise ConfigError("auto-sync needs a repository on disk")
    return os.path.join(prov_dir, "sync")


def start(git: GitRepository) -> int | None:
    """Hook side: ask for a sync; the pid of a new runner, or None (off, or a runner is
    alive and will see the request)."""
    if not configured_targets(git.config):
        return None
    directory = _directory(git)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, PENDING), "w", encoding="ascii"):
        pass
    if holder(os.path.join(directory, LOCK)) is not None:
        return None
    argv = [sys.executable, "-c", _RUNNER]
    env = {k: v for k, v in os.environ.items() if k != "GIT_INDEX_FILE"}
    log = os.open(os.path.join(directory, LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if hasattr(os, "posix_spawn"):
            actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                       (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)]
            return os.posix_spawn(sys.executable, argv, env, file_actions=actions, setsid=True)
        import subprocess

        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                close_fds=True, start_new_session=True)
        return proc.pid
    finally:
        os.close(log)


# -- the runner ------------------------------------------------------------------------
def _take(lock: str) -> bool:
    fd = take(lock)
    if fd is None:
        return False
    os.close(fd)
    return True


def _bridge(target: str, config: GitConfig, store: ProvStore) -> Any:
    if target == "mlflow":
        from .mlflow_bridge import DEFAULT_TIMEOUT, MlflowBridge

        try:
            timeout = float(config.get("prov.sync.mlflow.timeout") or DEFAULT_TIMEOUT)
        except ValueError:
            raise ConfigError("git config prov.sync.mlflow.timeout is not a number of seconds") from None
        return MlflowBridge(config.get("prov.sync.mlflow.trackingUri"),
                            experiment_prefix=config.get("prov.sync.mlflow.experimentPrefix") or "",
                            artifact_location=config.get("prov.sync.mlflow.artifactLocation"),
                            store=store, timeout=timeout,
                            register_models=(config.get("prov.sync.mlflow.registerModels") or "").lower()
                            in ("true", "yes", "on", "1"))
    from .wandb_bridge import WandbBridge

    project = config.get("prov.sync.wandb.project")
    if not project:
        raise ConfigError("auto-sync to wandb needs a project: git config prov.sync.wandb.project NAME")
    return WandbBridge(project, entity=config.get("prov.sync.wandb.entity"), store=store)


def run(store: ProvStore, *, lock_wait: float = 600.0, out: Callable[[str], None] = print) -> int:
    """Runner side: sync every configured target until no commit asks for more; 0, or
    10 when a run was not synced (it stays pending for the next sync)."""
    from ..store.prov_store import ProvStore

    store = ProvStore.of(store)
    import contextlib

    from .._util.clock import utc_timestamp
    from ..errors import ProvError
    from .engine import sync_runs

    directory = _directory(store.git)
    os.makedirs(directory, exist_ok=True)
    lock, pending = os.path.join(directory, LOCK), os.path.join(directory, PENDING)
    with contextlib.suppress(OSError):
        trim(os.path.join(directory, LOG), _LOG_LIMIT, 500)
    failed = False
    while True:
        if not _take(lock):
            out(f"{utc_timestamp()} another auto-sync is running (pid {holder(lock)}); it syncs this change too")
            return 0
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pending)
            failed = False
            config = store.git.config
            targets = configured_targets(config)
            out(f"{utc_timestamp()} auto-sync (pid {os.getpid()}) to {', '.join(targets) or 'nothing'}")
            try:
                workers = max(1, int(config.get("prov.sync.workers") or 4))
            except ValueError:
                out(f"{utc_timestamp()} git config prov.sync.workers is not a number; using 4")
                workers = 4
            for target in targets:
                try:
                    bridge = _bridge(target, config, store)
                    report = sync_runs(store, bridge, workers=workers, lock_wait=lock_wait)
                except ProvError as exc:
                    out(f"{utc_timestamp()} {target}: error: {exc}")
                    failed = True
                    continue
                counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts().items())) or "no runs"
                out(f"{utc_timestamp()} synced to {report.kind} {report.target}: {counts} ({report.seconds:.1f}s)")
                for r in report.failed:
                    out(f"    {r.run_id[:12]} {r.status}: {r.error}")
                failed = failed or bool(report.failed)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
        if not os.path.exists(pending):
            return 10 if failed else 0
