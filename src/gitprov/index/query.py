"""Compile MongoDB-style run queries to parameterized SQL over the run index.

Fields: ``params.<key>``, ``metrics.<key>``, ``attributes.<key>``, ``tags.<key>`` (the
tag's value), ``tags`` (tag names), ``inputs.models.<name>`` / ``inputs.runs.<id>`` /
``inputs.datasets.<key>`` (versions, paths, digests) and ``inputs.models`` etc. (names),
the same under ``outputs.``, and ``status``, ``experiment``, ``name``, ``created``,
``ended``, ``commit``, ``parent``, ``id``; MLflow's run attributes as ``mlflow.run_id``,
``mlflow.run_name``, ``mlflow.status`` (``FINISHED``), ``mlflow.start_time`` and
``mlflow.end_time`` (milliseconds). Operators: ``$eq $ne $gt $gte $lt $lte $in $nin
$exists $regex $like $ilike $not`` on fields, ``$and $or $nor $not`` on documents.
Several values per field (tags, lineage) match like MongoDB arrays: a condition holds
when one value satisfies it; ``$ne``/``$nin`` when none equals. A string compared with a
param compares the param's text (``param_text``: what MLflow holds once the run is
synced), so ``'0.01'`` matches ``lr=0.01``. User values only ever travel as SQL parameters.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..errors import QueryError, UnknownFieldError
from .encoding import (
    COMMIT_SQL,
    DIRECTIONS,
    EXPERIMENT_SQL,
    KEYED_TABLES,
    LINKS_SQL,
    NODE_KINDS,
    STATUS_SQL,
    hex_sql,
    key_sql,
    node_hash,
)

if TYPE_CHECKING:
    import sqlite3

__all__ = ["compile_order", "compile_query", "like_glob", "select_found", "select_run_ids", "select_runs"]


#: a run's times as the index stores them (``encoding.time_value``: they sort as their text;
#: ``updated`` is NULL when it is ``ended``)
_TIMES = {"created": "r.created", "ended": "r.ended", "updated": "COALESCE(r.updated, r.ended)"}
_COLUMNS = {
    "status": STATUS_SQL, "experiment": EXPERIMENT_SQL, "name": "r.name",
    **{field: f"time_text({sql})" for field, sql in _TIMES.items()},
    "commit": hex_sql(COMMIT_SQL), "parent": hex_sql("r.parent"), "id": "lower(hex(r.id))",
}
_KEYED = KEYED_TABLES
#: MLflow's run status of a git-prov run (what sync sets)
_MLFLOW_STATUS = (f"(CASE {STATUS_SQL} WHEN 'running' THEN 'RUNNING' WHEN 'finished' THEN 'FINISHED' "
                  "WHEN 'failed' THEN 'FAILED' WHEN 'crashed' THEN 'FAILED' WHEN 'killed' THEN 'KILLED' "
                  f"ELSE upper({STATUS_SQL}) END)")
#: MLflow's run attributes: (SQL, numeric)
_MLFLOW_COLUMNS = {
    "mlflow.run_id": ("lower(hex(r.id))", False), "mlflow.run_name": ("r.name", False),
    "mlflow.status": (_MLFLOW_STATUS, False), "mlflow.start_time": ("epoch_ms(r.created)", True),
    "mlflow.end_time": ("epoch_ms(r.ended)", True), "mlflow.user_id": ("r.user", False),
}
_MLFLOW_MISSING = {
    "mlflow.artifact_uri": "a run's artifacts live in the ledger, not at a URI",
}
#: a param's number, when it is one (its ``value`` is its text, ``rows.param_text``)
_PARAM_NUMBER = "x.num"
#: what the text of a number or a boolean param can look like (``rows.param_text``)
_NUMBER_TEXT = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false")
#: the lineage rows of a run, with their node's kind, name and item (``j.value``: a link of the
#: run's ``lineage.links``, the node id doubled plus the direction)
_LINEAGE = f"lineage l JOIN {LINKS_SQL} JOIN nodes x ON x.nid = j.value >> 1"
#: the same, a row a link (``lineage_node``): for a node named in full, found by its hash
_NODE_LINKS = "lineage_node l JOIN nodes x ON x.nid = l.link >> 1"
_LINEAGE_KINDS = {"models": "model", "runs": "run", "datasets": "dataset"}
_COMPARE = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_FIELD_OPS = {*_COMPARE, "$ne", "$in", "$nin", "$exists", "$regex", "$like", "$ilike", "$not", "$options"}
_DOC_OPS = ("$and", "$or", "$nor", "$not")


class _Target:
    """Where a field's values live: ``table`` rows (several per run) or a runs column."""

    def __init__(self, field: str, value_sql: str, table: str | None = None,
                 match: str = "", match_args: tuple = (), numeric_only: bool = False,
                 text_only: bool = False, num_sql: str | None = None) -> None:
        self.field = field
        self.value_sql = value_sql
        self.table = table
        self.match = match
        self.match_args = match_args
        self.numeric_only = numeric_only
        self.text_only = text_only
        #: SQL for the field's value as a number, when ``value_sql`` is its text (params)
        self.num_sql = num_sql
        #: the last set ``rows`` made of a table of ``_ONE_ROW_A_KEY``: (its SQL, the table,
        #: the condition on its rows), which a query of that equality alone joins
        self.drive: tuple[str, str, str] | None = None

    def rows(self, cond: str, args: list[Any], sets: bool = False) -> tuple[str, list[Any]]:
        """SQL true when some value of the field satisfies ``cond``: a lookup per run
        (``EXISTS``, cheap when a short answer stops early), or with ``sets`` the runs
        that satisfy it found once (``IN``, through the ``(key, value)`` indexes)."""
        if self.table is None:
            return f"COALESCE(({cond}), 0)", args
        source, run = ((_LINEAGE, "l.run") if self.table == "lineage" else (_NODE_LINKS, "l.run")
                       if self.table == "lineage_node" else (f"{self.table} x", "x.run"))
        if sets:
            where = " AND ".join(p for p in (self.match, f"({cond})" if cond else "") if p) or "1"
            sql = f"r.rid IN (SELECT {run} FROM {source} WHERE {where})"
            if self.table in _ONE_ROW_A_KEY:
                self.drive = (sql, source, where)
            return sql, [*self.match_args, *args]
        where = " AND ".join(p for p in (f"{run} = r.rid", self.match, f"({cond})" if cond else "") if p)
        return f"EXISTS (SELECT 1 FROM {source} WHERE {where})", [*self.match_args, *args]


def _target(field: str) -> _Target:
    if not isinstance(field, str) or not field:
        raise QueryError(f"query field {field!r} must be a non-empty string")
    if field in _COLUMNS:
        return _Target(field, _COLUMNS[field], text_only=True)
    if field in _MLFLOW_COLUMNS:
        sql, numeric = _MLFLOW_COLUMNS[field]
        return _Target(field, sql, numeric_only=numeric, text_only=not numeric)
    if field in _MLFLOW_MISSING:
        raise UnknownFieldError(f"query field {field!r} (MLflow's attributes.{field[7:]}) has no meaning here: "
                                f"{_MLFLOW_MISSING[field]}")
    if field == "tags":
        return _Target(field, "(SELECT name FROM keys WHERE kid = x.key)", "tags", text_only=True)
    head, dot, rest = field.partition(".")
    if head in _KEYED and dot:
        if not rest:
            raise QueryError(f"query field {field!r} names no key")
        return _Target(field, "x.value", head, f"x.key = {key_sql(head)}", (rest,), numeric_only=head == "metrics",
                       text_only=head == "tags", num_sql=_PARAM_NUMBER if head == "params" else None)
    if head in ("inputs", "outputs") and dot:
        kind_name, dot2, name = rest.partition(".")
        kind = _LINEAGE_KINDS.get(kind_name)
        if kind is None:
            raise UnknownFieldError(
                f"unknown query field {field!r}; lineage fields are {head}.models, {head}.runs, {head}.datasets")
        direction = DIRECTIONS["in" if head == "inputs" else "out"]
        code = NODE_KINDS[kind]
        if not dot2:  # a run node's name is its id as bytes (``encoding.node_row``)
            return _Target(field, hex_sql("x.name") if kind == "run" else "x.name", "lineage",
                           "j.value % 2 = ? AND x.kind = ?", (direction, code), text_only=True)
        if not name:
            raise QueryError(f"query field {field!r} names no {kind}")
        if kind == "run":  # a run id or a prefix of one
            prefix = name.lower()
            return _Target(field, "x.item", "lineage",
                           f"j.value % 2 = ? AND x.kind = ? AND substr({hex_sql('x.name')}, 1, ?) = ?",
                           (direction, code, len(prefix), prefix), text_only=True)
        # the node found by its hash, its runs by their link (``lineage_node``)
        return _Target(field, "x.item", "lineage_node", f"l.link = x.nid * 2 + {direction} AND x.hash = ? AND "
                       "x.kind = ? AND x.name = ?", (node_hash(code, name), code, name), text_only=True)
    raise UnknownFieldError(
        f"unknown query field {field!r}; use params.<key>, metrics.<key>, attributes.<key>, tags, tags.<key>, "
        f"inputs.*/outputs.* or one of {', '.join(sorted(_COLUMNS))}"
    )


def _scalar(value: Any, field: str, op: str) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise QueryError(f"{op} on {field!r} takes a string, number, boolean or null, not {type(value).__name__}")


def _typed(target: _Target, op_sql: str, value: Any, op: str) -> tuple[str, list[Any]]:
    """``value_sql op ?`` restricted to values of the argument's type (no cross-type
    matches such as SQLite's "every string is greater than every number")."""
    v = target.value_sql
    n = target.num_sql or v
    if value is None:
        if op_sql != "=":
            raise QueryError(f"{op} on {target.field!r} cannot compare with null")
        return (f"({v} = 'null' AND {n} IS NULL)" if target.num_sql else f"{v} IS NULL"), []
    if isinstance(value, bool):
        if target.numeric_only or target.text_only:
            raise QueryError(f"{op} on {target.field!r} takes a {'number' if target.numeric_only else 'string'}, not a boolean")
        return f"(typeof({n}) = 'integer' AND {n} {op_sql} ?)", [int(value)]
    if isinstance(value, (int, float)):
        if target.text_only:
            raise QueryError(f"{op} on {target.field!r} takes a string, not {value!r}")
        if value != value:
            raise QueryError(f"{op} on {target.field!r}: NaN compares with nothing")
        return f"(typeof({n}) IN ('integer', 'real') AND {n} {op_sql} ?)", [value]
    if target.numeric_only:
        raise QueryError(f"{op} on {target.field!r} takes a number, not {value!r}")
    if target.num_sql is not None:  # a param's text; ``params_kv`` holds those of the params that are no number
        if op_sql == "=" and not _NUMBER_TEXT.fullmatch(value):
            return f"({n} IS NULL AND {v} = ?)", [value]
        return f"{v} {op_sql} ?", [value]
    if target.field == "status" and op_sql == "=":
        from ..model import RUN_STATUSES

        if value not in RUN_STATUSES:
            raise QueryError(f"status {value!r} is not one of {', '.join(RUN_STATUSES)}")
    return f"(typeof({v}) = 'text' AND {v} {op_sql} ?)", [value]


class _Compiler:
    def __init__(self, db: sqlite3.Connection | None, sets: bool = False) -> None:
        self.db = db
        self.sets = sets
        self.depth = 0
        #: the SQL of a set of runs one field's condition made -> (its table, the
        #: condition on the table's rows) (``select_found``: a query of that alone joins it)
        self.drives: dict[str, tuple[str, str]] = {}

    def document(self, query: Any, where: str = "query") -> tuple[str, list[Any]]:
        if not isinstance(query, dict):
            raise QueryError(f"{where} must be a dict, got {type(query).__name__}")
        from .filter import MAX_NESTING

        self.depth += 1
        try:
            if self.depth > MAX_NESTING + 1:
                raise QueryError(f"the query nests $and/$or/$nor/$not more than {MAX_NESTING} deep; flatten it")
            return self._document(query)
        finally:
            self.depth -= 1

    def _document(self, query: dict[str, Any]) -> tuple[str, list[Any]]:
        parts: list[str] = []
        args: list[Any] = []
        for key, value in query.items():
            if key in ("$and", "$or", "$nor"):
                if not isinstance(value, list) or not value:
                    raise QueryError(f"{key} takes a non-empty list of query dicts")
                subs = [self.document(v, f"an item of {key}") for v in value]
                joined = (" AND " if key == "$and" else " OR ").join(f"({s})" for s, _ in subs)
                parts.append(f"NOT ({joined})" if key == "$nor" else f"({joined})")
                args.extend(a for _, sub_args in subs for a in sub_args)
            elif key == "$not":
                sql, sub = self.document(value, "$not")
                parts.append(f"NOT ({sql})")
                args.extend(sub)
            elif isinstance(key, str) and key.startswith("$"):
                raise QueryError(f"unknown query operator {key!r}; use one of {', '.join(_DOC_OPS)} or a field name")
            else:
                sql, sub = self.field(key, value)
                parts.append(sql)
                args.extend(sub)
        return " AND ".join(parts) or "1", args

    def field(self, field: str, cond: Any) -> tuple[str, list[Any]]:
        target = _target(field)
        if isinstance(cond, dict) and cond and all(isinstance(k, str) and k.startswith("$") for k in cond):
            ops = cond
        elif isinstance(cond, dict):
            raise QueryError(f"condition on {field!r} must be a value or a dict of operators like {{'$gt': 1}}")
        else:
            ops = {"$eq": cond}
        for op in ops:
            if op not in _FIELD_OPS:
                raise QueryError(f"unknown query operator {op!r} on {field!r}; use one of {', '.join(sorted(_FIELD_OPS - {'$options'}))}")
        if set(ops) != {"$exists"}:
            self._check_known(target)
        parts: list[str] = []
        args: list[Any] = []
        for op, arg in ops.items():
            sql, sub = self.operator(target, op, arg, ops)
            parts.append(sql)
            args.extend(sub)
        if target.drive is not None and parts == [target.drive[0]] and set(ops) <= {"$eq", "$exists"}:
            self.drives[target.drive[0]] = target.drive[1:]
        return " AND ".join(parts), args

    def operator(self, target: _Target, op: str, arg: Any, ops: dict[str, Any]) -> tuple[str, list[Any]]:
        field = target.field
        if op in _COMPARE:
            return target.rows(*_typed(target, _COMPARE[op], _scalar(arg, field, op), op), self.sets)
        if op in ("$ne", "$nin"):
            sql, args = self.operator(target, "$eq" if op == "$ne" else "$in", arg, ops)
            return f"NOT ({sql})", args
        if op == "$in":
            if not isinstance(arg, (list, tuple)):
                raise QueryError(f"$in on {field!r} takes a list, not {type(arg).__name__}")
            if not arg:
                return "0", []
            conds = [_typed(target, "=", _scalar(v, field, op), op) for v in arg]
            return target.rows(" OR ".join(f"({c})" for c, _ in conds), [x for _, sub in conds for x in sub], self.sets)
        if op == "$exists":
            if not isinstance(arg, bool):
                raise QueryError(f"$exists on {field!r} takes true or false, not {arg!r}")
            sql, args = target.rows(f"{target.value_sql} IS NOT NULL" if target.table is None else "", [], self.sets)
            return (sql, args) if arg else (f"NOT ({sql})", args)
        if op == "$regex":
            if not isinstance(arg, str):
                raise QueryError(f"$regex on {field!r} takes a string, not {type(arg).__name__}")
            flags = ops.get("$options", "")
            if not isinstance(flags, str) or set(flags) - {"i", "m", "s"}:
                raise QueryError(f"$options on {field!r} takes letters among 'ims', not {flags!r}")
            pattern = (f"(?{flags})" if flags else "") + arg
            try:
                re.compile(pattern)
            except re.error as exc:
                raise QueryError(f"$regex on {field!r}: {arg!r} is not a regular expression ({exc})") from exc
            v = target.value_sql
            return target.rows(f"(typeof({v}) = 'text' AND {v} REGEXP ?)", [pattern], self.sets)
        if op in ("$like", "$ilike"):
            if not isinstance(arg, str):
                raise QueryError(f"{op} on {field!r} takes a string pattern, not {type(arg).__name__}")
            if target.numeric_only:
                raise QueryError(f"{op} on {field!r}: only text fields (params, tags, names) take a pattern")
            v = target.value_sql
            cond = f"{v} GLOB ?" if op == "$like" else f"lower({v}) GLOB lower(?)"
            return target.rows(f"(typeof({v}) = 'text' AND {cond})", [like_glob(arg)], self.sets)
        if op == "$options":
            if "$regex" not in ops:
                raise QueryError(f"$options on {field!r} needs $regex")
            return "1", []
        if op == "$not":
            if not isinstance(arg, dict) or not arg or not all(isinstance(k, str) and k.startswith("$") for k in arg):
                raise QueryError(f"$not on {field!r} takes a dict of operators like {{'$gt': 1}}")
            sql, args = self.field(field, arg)
            return f"NOT ({sql})", args
        raise QueryError(f"unknown query operator {op!r}")

    def _check_known(self, target: _Target) -> None:
        """A param, metric or attribute no run has is a typo, not an empty result."""
        if self.db is None or target.table not in ("params", "metrics", "attributes"):
            return
        key = target.match_args[0]
        if self.db.execute("SELECT 1 FROM keys WHERE kind = ? AND name = ? AND uses > 0",
                           (target.table, key)).fetchone() is None:
            known = [k for (k,) in self.db.execute(
                "SELECT name FROM keys WHERE kind = ? AND uses > 0 ORDER BY name LIMIT 20", (target.table,))]
            hint = f"; known: {', '.join(known)}" if known else ""
            raise UnknownFieldError(f"no run has {target.table[:-1] if target.table != 'metrics' else 'metric'} "
                                    f"{key!r} (query field {target.field!r}){hint}")


def like_glob(pattern: str) -> str:
    """A SQL ``LIKE`` pattern (``%`` any run of characters, ``_`` one) as the ``GLOB``
    pattern that matches the same strings, case-sensitively (MLflow's ``LIKE``)."""
    return "".join({"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}.get(c, c) for c in pattern)


def compile_query(query: dict[str, Any] | None, db: sqlite3.Connection | None = None,
                  sets: bool = False) -> tuple[str, list[Any]]:
    """``(where_sql, args)`` for ``query`` over ``runs r``; ``db`` checks keys exist;
    ``sets``: the runs satisfying each condition found once (``Target.rows``)."""
    return _Compiler(db, sets).document(query or {}, "query")


def compile_order(order_by: str | list[str] | None) -> tuple[str, list[Any]]:
    """``ORDER BY`` terms for ``"metrics.acc desc, created"`` or a list of such terms;
    runs without the key sort last. Ties break newest first."""
    terms, args, _ = _order(order_by)
    return ", ".join(terms), args


#: up to this many runs, an answer in the index's order (newest first) tests run after run
#: until it has them (``EXISTS``); longer ones find each condition's runs once (``IN``)
SHORT = 100


def select_run_ids(db: sqlite3.Connection, query: dict[str, Any] | None, order_by: str | list[str] | None,
                   limit: int | None, include_deleted: bool = False) -> list[str]:
    """Ids of the runs matching ``query`` in ``order_by`` order, at most ``limit``."""
    return [run_id for run_id, _ in select_runs(db, query, order_by, limit, include_deleted)]


def select_runs(db: sqlite3.Connection, query: dict[str, Any] | None, order_by: str | list[str] | None,
                limit: int | None, include_deleted: bool = False) -> list[tuple[str, str]]:
    """``(run id, run directory tree id)`` of the runs matching ``query`` in ``order_by``
    order, at most ``limit`` (``select_found``)."""
    return [(run_id, tree.hex()) for run_id, tree, _ in select_found(db, query, order_by, limit, include_deleted)]


def select_found(db: sqlite3.Connection, query: dict[str, Any] | None, order_by: str | list[str] | None,
                 limit: int | None, include_deleted: bool = False) -> list[tuple[str, bytes, int]]:
    """``(run id, run directory tree id as bytes, rid)`` of the runs matching ``query``
    in ``order_by`` order, at most ``limit``, in one statement (two with an order by a
    key and a limit). The tree stays bytes: a summary compares it as the index holds it,
    and only reading the run from git needs its hex.

    Ordered by a param, metric or attribute with a limit, the runs are walked in the
    order of the ``(key, value)`` index and the walk stops at ``limit`` (the best 10 of
    100,000 runs read about 10 rows); runs without the key follow, as in the plain plan.
    """
    terms, order_args, first = _order(order_by)
    order = ", ".join(terms)
    compiler = _Compiler(db, sets=limit is None or limit > SHORT)
    where, args = compiler.document(query or {}, "query")
    drive = compiler.drives.get(where)
    if not include_deleted:
        where = f"({where}) AND r.deleted = 0"
    if limit is None or first is None:
        sql = f"SELECT r.id, r.tree, r.rid FROM runs r WHERE {where} ORDER BY {order}"
        if limit is not None and (limit <= SHORT or len(terms) > len(_NEWEST_FIRST)):
            return [(run_id.hex(), tree, rid) for run_id, tree, rid in db.execute(
                sql + " LIMIT ?", [*args, *order_args, limit])]
        if drive is not None:  # one set alone: its rows joined, no set of them built first (-3.5 M)
            table, rows = drive
            sql = (f"SELECT r.id, r.tree, r.rid FROM {table} JOIN runs r ON r.rid = x.run WHERE {rows}"
                   f"{'' if include_deleted else ' AND r.deleted = 0'} ORDER BY {order}")
        # a long answer newest first is cut where it is read, not by a ``LIMIT``: with one,
        # SQLite keeps the best so far in a b-tree, and candidates found in the order they
        # were indexed (mostly oldest first) each beat the worst kept, an insert and a
        # delete each; without, it sorts them all at once (2,524 candidates of the newest
        # 1,000: 32.4 M -> 21.1 M instructions), and a walk in index order stops as soon as
        # the rows are read. In another order most candidates lose to the worst kept at one
        # comparison, and the ``LIMIT`` stays (sorting 25,196 by name: 5% slower without)
        cursor = db.execute(sql, [*args, *order_args])
        try:
            rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
        finally:
            cursor.close()  # the statement reset: no read left open
        return [(run_id.hex(), tree, rid) for run_id, tree, rid in rows]
    table, key, direction = first
    rest = ", ".join(terms[1:])
    rest_args = order_args[1:]
    value = _sort_value(table, "o")
    with_key = (f"SELECT r.id, r.tree, r.rid FROM {table} o JOIN runs r ON r.rid = o.run WHERE o.key = {key_sql(table)} "
                f"AND {value} IS NOT NULL AND {where} ORDER BY {value} {direction}, {rest} LIMIT ?")
    found = [(run_id.hex(), tree, rid) for run_id, tree, rid in db.execute(
        with_key, [key, *args, *rest_args, limit])]
    if len(found) < limit:
        without = (f"SELECT r.id, r.tree, r.rid FROM runs r WHERE NOT EXISTS (SELECT 1 FROM {table} x "
                   f"WHERE x.run = r.rid AND x.key = {key_sql(table)} AND {_sort_value(table, 'x')} IS NOT NULL) "
                   f"AND {where} ORDER BY {rest} LIMIT ?")
        found += [(run_id.hex(), tree, rid) for run_id, tree, rid in db.execute(
            without, [key, *args, *rest_args, limit - len(found)])]
    return found


#: the tables with at most one row a run and key, whose rows of one key and value come in
#: run order: a set of their runs equal to a value can be joined (``metrics`` are left
#: out: a range of ``metrics_kv`` gives its runs in value order, and looking the runs up
#: in that order took 122 ms where the set, looked up in run order, took 92 ms, 100,000
#: runs, ``metrics.acc >= 0``)
_ONE_ROW_A_KEY = ("params", "tags", "attributes")
#: the order of every answer, or of its ties: newest first, then by id
_NEWEST_FIRST = ["r.created DESC", "r.id"]
#: MLflow's run attributes sort as the run's own fields do
_ORDER_AS = {"mlflow.start_time": "created", "mlflow.end_time": "ended", "mlflow.run_name": "name",
             "mlflow.run_id": "id"}


def _order_field(field: str) -> str:
    """The field an ``order_by`` term names, MLflow's names (``attributes.start_time``,
    ``metric.acc``, backquoted keys) included."""
    from .filter import named_field

    named = named_field(field)
    return _ORDER_AS.get(named, named)


def _sort_value(table: str, alias: str) -> str:
    """What a run sorts by in a keyed table: a param's number, else its text."""
    return f"COALESCE({alias}.num, {alias}.value)" if table == "params" else f"{alias}.value"


def _order(order_by: str | list[str] | None) -> tuple[list[str], list[Any], tuple[str, str, str] | None]:
    first: tuple[str, str, str] | None = None
    terms: list[str] = []
    if order_by is None:
        items: list[str] = []
    elif isinstance(order_by, str):
        items = [t for t in order_by.split(",") if t.strip()] if order_by.strip() else []
    elif isinstance(order_by, (list, tuple)) and all(isinstance(t, str) for t in order_by):
        items = list(order_by)
    else:
        raise QueryError("order_by takes 'field [asc|desc]' or a list of such strings")
    sql: list[str] = []
    args: list[Any] = []
    for item in items:
        text = item.strip()
        head, _, last = text.rpartition(" ")
        field, direction = (head.strip(), last.upper()) if head and last.lower() in ("asc", "desc") else (text, "ASC")
        if not field or (" " in field.replace("` ", "`").strip("`") and "`" not in field):
            raise QueryError(f"cannot order by {text!r}; write 'field', 'field asc' or 'field desc'")
        if field.startswith("-"):
            field, direction = field[1:], "DESC"
        field = _order_field(field)
        target = _target(field)
        if target.table in ("params", "metrics", "attributes", "tags") and target.match_args:
            if not terms:
                first = (target.table, target.match_args[0], direction)
            sql.append(f"(SELECT {_sort_value(target.table, 'x')} FROM {target.table} x WHERE x.run = r.rid AND "
                       f"x.key = {key_sql(target.table)}) {direction} NULLS LAST")
            args.append(target.match_args[0])
        elif target.table is None:
            sql.append(f"{_TIMES.get(field, target.value_sql)} {direction} NULLS LAST")
        else:
            raise QueryError(f"cannot order by {field!r}: it can hold several values per run")
        terms.append(field)
    sql += _NEWEST_FIRST
    return sql, args, first
