"""What the web interface shows, as plain JSON-ready dicts: the runs table (answered by
the query index), a run, its series, observations and artifacts, a comparison, the
lineage graph, commits. Read only: nothing here writes to the repository."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import DataError, UsageError
from ..index.encoding import COMMIT_SQL, EXPERIMENT_SQL, STATUS_SQL

if TYPE_CHECKING:
    from ..runs.run import Run
    from ..store.prov_store import ProvStore

__all__ = [
    "GROUPS", "PAGE_LIMIT", "artifact_content", "artifact_preview", "code_diff", "commit_page", "commits_page",
    "compare", "lineage_graph", "observations", "run_detail", "runs_page",
]

#: the most rows one page of the runs table may ask for
PAGE_LIMIT = 1000
#: what the runs table may group by, and the SQL of the index (run ``r``) each reads
GROUPS = {"experiment": EXPERIMENT_SQL, "status": STATUS_SQL, "commit": COMMIT_SQL}
#: media types shown inline as images (never SVG: it can carry script)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
#: bytes of a text artifact shown in its preview
PREVIEW_BYTES = 64 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _index(store: ProvStore) -> Any:
    from ..index import index_of

    return index_of(store)


def _query(where: str | None) -> dict[str, Any] | None:
    from ..index.filter import parse_filter

    return parse_filter(where) if where and where.strip() else None


def run_ids(store: ProvStore, where: str | None = None, order: str | None = None) -> list[str]:
    """Every run matching the filter ``where`` (prov's filter language) in ``order``."""
    import sqlite3

    from ..index.query import select_run_ids

    index = _index(store)
    try:
        return select_run_ids(index.connection(), _query(where), order or None, None)
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc


def load(store: ProvStore, ids: list[str]) -> list[Run]:
    """The runs ``ids`` (full ids), read in bulk, in that order."""
    from ..index.search import load_runs

    by_id = {run.id: run for run in load_runs(store, _index(store).run_trees(ids))}
    return [by_id[i] for i in ids if i in by_id]


def key_names(store: ProvStore) -> dict[str, list[str]]:
    """Param and metric keys, most used first (the columns a user may choose)."""
    db = _index(store).connection()
    out: dict[str, list[str]] = {"params": [], "metrics": []}
    for kind, name in db.execute("SELECT kind, name FROM keys WHERE kind IN ('params', 'metrics') AND uses > 0 "
                                 "ORDER BY uses DESC, name LIMIT 500"):
        out[kind].append(name)
    return out


def run_row(run: Run, params: list[str], metrics: list[str]) -> dict[str, Any]:
    """A run as a row of the runs table."""
    hyper = run.get_hyperparameters()
    state = run.state
    return {
        "id": run.id, "name": run.name, "experiment": run.experiment, "status": run.status,
        "created": run.record.created, "ended": state.ended, "commit": run.get_code().commit,
        "dirty": bool(run.get_code().is_dirty), "parent": run.record.parent,
        "params": {k: hyper[k] for k in params if k in hyper},
        "metrics": {k: state.metrics[k].value for k in metrics if k in state.metrics},
        "tags": state.tags,
    }


def runs_page(store: ProvStore, where: str | None = None, order: str | None = None, offset: int = 0,
              limit: int = 50, group: str | None = None, params: list[str] | None = None,
              metrics: list[str] | None = None) -> dict[str, Any]:
    """One page of the runs table: the matching runs' count, the page's rows with the
    chosen param and metric columns (default: the most used), and, grouped, each
    group's size with the rows ordered group by group (``order`` within a group).
    The index counts and orders; only the page's runs are read."""
    import sqlite3

    from ..index.query import compile_order, compile_query, select_run_ids

    if not 0 < limit <= PAGE_LIMIT or offset < 0:
        raise UsageError(f"a page holds 1 to {PAGE_LIMIT} runs from a non-negative offset")
    if group and group not in GROUPS:
        raise UsageError(f"runs group by one of {', '.join(GROUPS)}, not {group!r}")
    index = _index(store)
    db = index.connection()
    query = _query(where)
    keys = key_names(store)
    params = keys["params"][:4] if params is None else params
    metrics = keys["metrics"][:4] if metrics is None else metrics
    groups: list[dict[str, Any]] = []
    try:
        cond, args = compile_query(query, db)
        cond = f"({cond}) AND r.deleted = 0"
        total = db.execute(f"SELECT count(*) FROM runs r WHERE {cond}", args).fetchone()[0]
        if group:
            column = GROUPS[group]
            groups = [{"value": _plain(value), "count": count} for value, count in db.execute(
                f"SELECT {column}, count(*) FROM runs r WHERE {cond} GROUP BY {column} ORDER BY {column}", args)]
            order_sql, order_args = compile_order(order or None)
            ids = [row[0].hex() for row in db.execute(
                f"SELECT r.id FROM runs r WHERE {cond} ORDER BY {column}, {order_sql} LIMIT ? OFFSET ?",
                [*args, *order_args, limit, offset])]
        else:
            ids = select_run_ids(db, query, order or None, offset + limit)[offset:]
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc
    page = load(store, ids)
    rows = [run_row(run, params, metrics) for run in page]
    if group:
        of = {key.hex(): _plain(value) for key, value in db.execute(
            f"SELECT r.id, {GROUPS[group]} FROM runs r WHERE r.id IN ({', '.join('?' * len(ids))})",
            [bytes.fromhex(i) for i in ids])}
        for row in rows:
            row["group"] = of.get(row["id"], "")
    return {"total": total, "offset": offset, "limit": limit, "rows": rows, "groups": groups,
            "columns": {"params": params, "metrics": metrics}, "keys": keys, "group": group or ""}


def _plain(value: Any) -> str:
    """A grouping value as the table shows it (ids the index keeps as bytes in hex)."""
    return (value.hex() if isinstance(value, bytes) else str(value)) if value is not None else ""


def _child_ids(store: ProvStore, run_id: str) -> list[str]:
    db = _index(store).connection()
    return [key.hex() for (key,) in db.execute("SELECT id FROM runs WHERE parent = ? ORDER BY created",
                                                (bytes.fromhex(run_id),))]


def run_detail(store: ProvStore, run: Run) -> dict[str, Any]:
    """Everything the run page shows but the series themselves."""
    state = run.state
    code = run.get_code()
    attributes = {k: v for k, v in state.attributes.items() if not k.startswith("prov.stage/")}
    stages = {k.removeprefix("prov.stage/"): v for k, v in state.attributes.items() if k.startswith("prov.stage/")}
    environment = run.record.environment
    if "prov.environment" in state.attributes:
        environment = state.attributes["prov.environment"]
    children = _child_ids(store, run.id)
    linked = load(store, ([run.record.parent] if run.record.parent else []) + children)
    names = {r.id: {"id": r.id, "name": r.name, "status": r.status} for r in linked}
    return codec.to_plain({
        "id": run.id, "name": run.name, "experiment": run.experiment, "status": run.status,
        "created": run.record.created, "updated": state.updated, "ended": state.ended, "exit_code": state.exit_code,
        "deleted": state.deleted, "command": run.record.command, "params": run.get_hyperparameters(),
        "metrics": state.metrics, "observations": state.observations, "tags": state.tags, "attributes": attributes,
        "stages": stages, "datasets": state.datasets, "artifacts": state.artifacts, "code": code,
        "environment": environment, "io_schema": state.io_schema, "lineage": state.lineage,
        "parent": names.get(run.record.parent) if run.record.parent else None,
        "children": [names[c] for c in children if c in names],
        "patch": (run.get_code_patch() or b"").decode("utf-8", "replace") if code.patch else None,
    })


def observations(run: Run, key: str) -> list[dict[str, Any]]:
    if key not in run.state.observations:
        raise UsageError(f"run {run.id[:12]} has no observation {key!r}")
    return codec.to_plain([{"epoch": o.epoch, "timestamp": o.timestamp, "value": o.value}
                           for o in run.get_observations(key)])


def artifact_content(store: ProvStore, run: Run, key: str) -> tuple[bytes, str]:
    """The bytes of artifact ``key`` and its media type. The key is looked up among the
    run's artifacts, never used as a path; a cached artifact is read only from inside
    ``.git/prov/cas`` (a symlink pointing out of it is refused)."""
    import os

    from .._util.paths import is_inside

    ref = run.state.artifacts.get(key)
    if ref is None:
        raise UsageError(f"run {run.id[:12]} has no artifact {key!r}")
    if ref.location == "cache":
        prov_dir = store.git.prov_dir()
        if prov_dir is None or not _HEX64.fullmatch(ref.sha256):
            raise DataError(f"artifact {key!r} names no readable cache entry")
        path = os.path.join(prov_dir, "cas", ref.sha256[:2], ref.sha256)
        if os.path.lexists(path) and not is_inside(path, os.path.join(prov_dir, "cas")):
            raise DataError(f"artifact {key!r}: its cache entry points outside the repository; refused")
    elif ref.location != "tree":
        raise DataError(f"artifact {key!r} is stored at {ref.location}, which the interface does not fetch")
    return run.get_artifact(key), ref.media_type


def artifact_preview(store: ProvStore, run: Run, key: str) -> dict[str, Any]:
    """A preview: ``image`` (the page loads it by URL), the head of a text, the first
    rows of a CSV, a JSON value pretty-printed, or nothing for other kinds."""
    ref = run.state.artifacts.get(key)
    if ref is None:
        raise UsageError(f"run {run.id[:12]} has no artifact {key!r}")
    kind = _preview_kind(key, ref.media_type)
    out: dict[str, Any] = {"key": key, "media_type": ref.media_type, "size": ref.size, "sha256": ref.sha256,
                           "kind": kind}
    if kind in ("none", "image"):
        return out
    data, _ = artifact_content(store, run, key)
    text = data[:PREVIEW_BYTES].decode("utf-8", "replace")
    out["truncated"] = len(data) > PREVIEW_BYTES
    if kind == "csv":
        import csv
        import io
        import itertools

        out["rows"] = list(itertools.islice(csv.reader(io.StringIO(text)), 50))
    elif kind == "json" and not out["truncated"]:
        import json

        try:
            out["text"] = json.dumps(json.loads(text), indent=2, ensure_ascii=False)[:PREVIEW_BYTES]
        except ValueError:
            out["text"] = text
    else:
        out["text"] = text
    return out


def _preview_kind(key: str, media_type: str) -> str:
    lower = key.lower()
    if media_type in IMAGE_TYPES:
        return "image"
    if media_type == "text/csv" or lower.endswith((".csv", ".tsv")):
        return "csv"
    if media_type == "application/json" or lower.endswith(".json"):
        return "json"
    if media_type.startswith("text/") or lower.endswith((".txt", ".md", ".log", ".yaml", ".yml", ".toml", ".py")):
        return "text"
    return "none"


def compare(store: ProvStore, ids: list[str]) -> dict[str, Any]:
    """The runs ``ids`` side by side: their params and latest metrics, and which differ."""
    from ..runs.reading import resolve_run_id

    if not 1 <= len(ids) <= 50:
        raise UsageError("compare 1 to 50 runs")
    runs = load(store, [resolve_run_id(store.ledger, i) for i in ids])
    params = sorted({k for r in runs for k in r.get_hyperparameters()})
    metrics = sorted({k for r in runs for k in r.state.metrics})
    rows = []
    for run in runs:
        hyper = run.get_hyperparameters()
        rows.append({"id": run.id, "name": run.name, "experiment": run.experiment, "status": run.status,
                     "commit": run.get_code().commit, "dirty": run.get_code().is_dirty,
                     "params": {k: hyper.get(k) for k in params if k in hyper},
                     "metrics": {k: run.state.metrics[k].value for k in metrics if k in run.state.metrics}})
    differ = {"params": [k for k in params if len({codec.encode(r["params"].get(k)) for r in rows}) > 1],
              "metrics": [k for k in metrics if len({r["metrics"].get(k) for r in rows}) > 1]}
    return codec.to_plain({"runs": rows, "params": params, "metrics": metrics, "differ": differ})


def code_diff(store: ProvStore, a: Run, b: Run) -> dict[str, Any]:
    """The code between two runs: ``git diff`` of their commits, and the difference
    between their uncommitted patches."""
    from ..store import gitbin

    ca, cb = a.get_code(), b.get_code()
    commits = ""
    if ca.commit and cb.commit and ca.commit != cb.commit:
        proc = gitbin.run(["diff", "--no-color", "--no-ext-diff", ca.commit, cb.commit, "--"],
                          git_dir=store.git.git_dir)
        commits = proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""
    pa = (a.get_code_patch() or b"").decode("utf-8", "replace")
    pb = (b.get_code_patch() or b"").decode("utf-8", "replace")
    patches = "".join(difflib.unified_diff(pa.splitlines(True), pb.splitlines(True),
                                           f"run {a.id[:12]} patch", f"run {b.id[:12]} patch")) if pa != pb else ""
    return {"a": {"id": a.id, "commit": ca.commit, "dirty": ca.is_dirty},
            "b": {"id": b.id, "commit": cb.commit, "dirty": cb.is_dirty},
            "commits": commits, "patches": patches}


def lineage_graph(store: ProvStore, node: str, direction: str = "both", depth: int | None = None) -> dict[str, Any]:
    from ..index.lineage import lineage

    return lineage(store, node, direction, depth).to_json()


def commits_page(store: ProvStore, limit: int = 50, rev: str | None = None) -> dict[str, Any]:
    """The history from ``rev`` (default HEAD) with each commit's provenance badges."""
    from ..provenance import history_provenance

    if not 0 < limit <= 500:
        raise UsageError("a page of commits holds 1 to 500 commits")
    out = []
    for prov in history_provenance(store, rev, limit):
        info = store.git.read_commit(prov.commit)
        out.append({"commit": prov.commit, "summary": prov.summary, "captured": bool(prov.captures),
                    "runs": len(prov.runs), "rewrites": len(prov.rewrites), "problems": len(prov.problems),
                    "author": _person(info), "parents": list(info.parents)})
    return {"commits": out}


def _person(info: Any) -> str:
    author = getattr(info, "author", "") or ""
    if isinstance(author, bytes):
        author = author.decode("utf-8", "replace")
    return author.split(" <")[0] if isinstance(author, str) else ""


def commit_page(store: ProvStore, rev: str) -> dict[str, Any]:
    """What ``prov show`` shows for ``rev``."""
    from ..provenance import commit_provenance

    commit = store.git.resolve(rev)
    prov = commit_provenance(store, commit)
    return prov.to_json()
