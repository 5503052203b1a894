"""Where an MLflow store lives and how to talk to it, for ``prov sync mlflow`` and ``prov
sync revision``, without importing mlflow: the tracking URI a sync uses (without one, a
sqlite store under ``.git/prov/mlflow``: never ``mlflow.db`` or ``mlruns/`` left
untracked in the work tree); whether an HTTP server answers (``/health``, asked before
anything is written, within the sync's ``--retries`` and ``--timeout``); and MLflow's
own request retries and timeout set from those while a sync runs."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .bridge import import_tracker, require_tracker

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["MLFLOW_EXTRA", "create_local_store", "is_http", "local_artifact_root", "local_store", "mlflow_home",
           "reach", "request_settings", "require_mlflow", "resolve_tracking_uri", "tracking_uri_in_process"]

MLFLOW_EXTRA = "pip install 'git-prov[mlflow]'"


def require_mlflow(purpose: str = "syncing to MLflow") -> None:
    """Fail early, without importing it, when mlflow is not installed."""
    require_tracker("mlflow", MLFLOW_EXTRA, purpose)


def tracking_uri_in_process() -> str | None:
    """The tracking URI the process gave mlflow (``mlflow.set_tracking_uri`` or
    ``$MLFLOW_TRACKING_URI``), or None when it runs on MLflow's default."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    return mlflow.get_tracking_uri() if is_tracking_uri_set() else None


def mlflow_home(store: ProvStore | None) -> str | None:
    """``.git/prov/mlflow`` of ``store``: where prov keeps an MLflow store it makes."""
    prov_dir = store.git.prov_dir() if store is not None else None
    return os.path.join(prov_dir, "mlflow") if prov_dir else None


def resolve_tracking_uri(tracking_uri: str | None, store: ProvStore | None) -> str:
    """The tracking URI a sync writes to: ``tracking_uri``; else the one this process
    gave mlflow or ``$MLFLOW_TRACKING_URI``; else the store in ``.git/prov/mlflow``;
    else MLflow's default. mlflow is imported only for the last (no repository)."""
    import sys

    uri = tracking_uri or (tracking_uri_in_process() if "mlflow" in sys.modules else os.environ.get("MLFLOW_TRACKING_URI"))
    home = mlflow_home(store)
    if not uri and home is not None:
        uri = "sqlite:///" + os.path.join(home, "mlflow.db")
    if not uri:
        uri = import_tracker("mlflow", MLFLOW_EXTRA, "syncing to MLflow").get_tracking_uri()
    return uri


def _sqlite_path(uri: str) -> str | None:
    """The database file of a local ``sqlite:///`` URI (None for anything else)."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return None
    from urllib.parse import unquote

    return os.path.abspath(unquote(uri[len("sqlite:///"):].split("?", 1)[0]))


def _inside(path: str, folder: str | None) -> bool:
    if not folder:
        return False
    folder = os.path.realpath(folder)
    return os.path.realpath(path) == folder or os.path.realpath(path).startswith(folder + os.sep)


def local_artifact_root(uri: str, home: str | None, store: ProvStore | None) -> str | None:
    """Where experiments this sync creates keep artifacts, for a local sqlite store:
    ``mlruns`` next to the database, or under ``.git/prov/mlflow`` when the database
    is in the work tree (never a ``mlruns/`` left untracked in it). None: MLflow's."""
    path = _sqlite_path(uri)
    if path is None:
        return None
    folder = os.path.join(os.path.dirname(path), "mlruns")
    work_tree = getattr(store, "work_tree", None) if store is not None else None
    if home is not None and _inside(folder, work_tree) and not _inside(folder, os.path.dirname(home)):
        folder = os.path.join(home, "mlruns")
    return folder


def create_local_store(uri: str, artifact_root: str | None) -> None:
    """A local sqlite store that does not exist yet is made with ``artifact_root``, so
    its ``Default`` experiment keeps artifacts there, not in ``./mlruns``."""
    path = _sqlite_path(uri)
    if path is None or artifact_root is None or os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(uri, artifact_root).engine.dispose()


def local_store(store: ProvStore, tracking_uri: str | None, artifact_location: str | None) -> tuple[str | None, str | None]:
    """The tracking URI and artifact location ``prov sync revision`` uses: without a URI
    (and no ``$MLFLOW_TRACKING_URI``) the store in ``.git/prov/mlflow``; for a local
    sqlite store, artifacts out of the work tree; the store made now if it is missing."""
    home = mlflow_home(store)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri and home is not None:
        uri = "sqlite:///" + os.path.join(home, "mlflow.db")
    if not uri:
        return tracking_uri, artifact_location
    location = artifact_location or local_artifact_root(uri, home, store)
    if _sqlite_path(uri) is not None:
        import_tracker("mlflow", MLFLOW_EXTRA, "syncing to MLflow")
        create_local_store(uri, location)
    return uri, location


@contextlib.contextmanager
def request_settings(retries: int, timeout: float) -> Iterator[None]:
    """MLflow's own HTTP retries, backoff and timeout set from ``retries`` and ``timeout``
    meanwhile (MLflow reads them from the environment at each request; the previous
    values come back afterwards)."""
    values = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout + 0.5)))}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def is_http(uri: str) -> bool:
    return uri.split("://", 1)[0].lower() in ("http", "https")


def reach(uri: str, retries: int, timeout: float) -> str | None:
    """None when the HTTP server at ``uri`` answers (any HTTP status but 502/503/504,
    or a TLS handshake: MLflow handles those), else why not. At most ``retries`` more
    tries (0.5 s, 1 s, 2 s … apart) within ``timeout`` seconds in all."""
    import ssl
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    started = time.monotonic()
    reason = "no answer"
    tries = 0
    for attempt in range(retries + 1):
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            break
        tries += 1
        try:
            with urllib.request.urlopen(url, timeout=left):  # noqa: S310 - the user's tracking server
                return None
        except urllib.error.HTTPError as exc:
            if exc.code not in (502, 503, 504):
                return None
            reason = f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                return None
            reason = _reason(exc.reason)
        except (OSError, ValueError) as exc:  # a timeout while reading, a bad URL
            if isinstance(exc, ssl.SSLError):
                return None
            reason = _reason(exc)
        pause = 0.5 * (2 ** attempt)
        if attempt == retries or time.monotonic() - started + pause >= timeout:
            break
        time.sleep(pause)
    return f"{reason} ({tries} {'try' if tries == 1 else 'tries'} in {time.monotonic() - started:.1f}s)"


def _reason(exc: object) -> str:
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()).lower() or type(exc).__name__
