"""Filter strings in MLflow's dialect (``params.lr = '0.01' and metrics.acc >= 0.9``,
what ``mlflow.search_runs(filter_string=...)`` takes, with the same meaning) plus
git-prov's extensions, parsed into the MongoDB-style dicts ``compile_query`` takes.

Grammar (keywords in any case)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := FIELD OP VALUE | FIELD ["not"] "in" "(" VALUE ("," VALUE)* ")"
                | FIELD ("like" | "ilike") 'pattern'
                | FIELD "is" ["not"] "null" | FIELD "exists"
    OP         := = == != <> < <= > >= ~   (~ is a regular-expression search)
    VALUE      := 'string' | "string" | number | true | false | null   (taken as written,
                  backslashes included, as MLflow does; \' does not end a string)
    FIELD      := name(.name)*, a name with spaces or symbols in `backticks` or "quotes"

MLflow's meaning (docs/lineage.md, "MLflow's dialect"): ``metric. param. parameter(s).
tag. attribute. attr. run.`` are aliases of ``metrics. params. tags. attributes.``;
MLflow's run attributes (``run_id run_name status start_time end_time created``, also
bare) name the run's own fields (``MLFLOW_ATTRIBUTES``); ``!=`` and ``not in`` on a
param, metric or tag match only runs that have it; ``like`` is case-sensitive, ``ilike``
not, with ``%`` and ``_`` wildcards.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import QueryError

__all__ = ["MLFLOW_ATTRIBUTES", "mlflow_field", "named_field", "parse_filter", "parse_order"]

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<op>>=|<=|!=|<>|==|=|>|<|~)
      | (?P<punct>[(),])
      | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<field>(?:[A-Za-z_][\w\-/:@]*|`[^`]+`)(?:\.(?:[\w\-/:@]+|`[^`]+`|"[^"]*"|'[^']*'))*)
    """,
    re.X,
)
_PART = re.compile(r"`([^`]+)`|\"([^\"]*)\"|'([^']*)'|([^.`\"']+)")
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false", "exists", "like", "ilike"}
_OPS = {"=": "$eq", "==": "$eq", "!=": "$ne", "<>": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "~": "$regex"}


#: deepest nesting a filter may have (a parser recursion per level; Python's stack is ~1,000)
MAX_NESTING = 64


class _Parser:
    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise QueryError(f"a filter must be a string, not {type(text).__name__}")
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                self.fail(pos, "unexpected character " + repr(text[pos]))
            kind = m.lastgroup or ""
            if kind != "ws":
                value = m.group()
                if kind == "field" and value.lower() in _KEYWORDS:
                    kind, value = "kw", value.lower()
                self.tokens.append((kind, value, pos))
            pos = m.end()
        self.i = 0
        self.depth = 0  # parentheses and 'not's open around the current position

    def fail(self, pos: int, expected: str) -> None:
        shown = repr(self.text[pos:pos + 20]) if pos < len(self.text) else "the end"
        whole = repr(self.text) if len(self.text) <= 200 else repr(self.text[:200]) + f"… ({len(self.text)} characters)"
        raise QueryError(f"cannot parse filter at position {pos + 1} ({shown}): {expected}; filter was {whole}")

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text))

    def take(self, kind: str, value: str | None = None) -> bool:
        k, v, _ = self.peek()
        if k == kind and (value is None or v == value):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, value: str | None, what: str) -> None:
        if not self.take(kind, value):
            self.fail(self.peek()[2], f"expected {what}")

    def parse(self) -> dict[str, Any]:
        if not self.tokens:
            return {}
        result = self.expr()
        if self.peek()[0] != "end":
            self.fail(self.peek()[2], "expected 'and', 'or' or the end")
        return result

    def expr(self) -> dict[str, Any]:
        items = [self.and_expr()]
        while self.take("kw", "or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else {"$or": items}

    def and_expr(self) -> dict[str, Any]:
        items = [self.unary()]
        while self.take("kw", "and"):
            items.append(self.unary())
        return items[0] if len(items) == 1 else {"$and": items}

    def unary(self) -> dict[str, Any]:
        if self.take("kw", "not"):
            self.nest()
            inner = {"$not": self.unary()}
        elif self.take("punct", "("):
            self.nest()
            inner = self.expr()
            self.expect("punct", ")", "')'")
        else:
            return self.comparison()
        self.depth -= 1
        return inner

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(self.peek()[2], f"at most {MAX_NESTING} nested parentheses and 'not's")

    def comparison(self) -> dict[str, Any]:
        kind, value, pos = self.peek()
        if kind != "field":
            self.fail(pos, "expected a field such as params.lr or metrics.acc")
        self.i += 1
        field = named_field(value)
        kind, op, pos = self.peek()
        if kind == "op":
            self.i += 1
            arg = self.value()
            field = _by_value(field, [arg])
            if _OPS[op] == "$ne" and field.startswith(_KEYED):
                return {field: {"$exists": True, "$ne": arg}}
            return {field: {_OPS[op]: arg}}
        negate = self.take("kw", "not")
        if self.take("kw", "in"):
            self.expect("punct", "(", "'(' after 'in'")
            values = [self.value()]
            while self.take("punct", ","):
                values.append(self.value())
            self.expect("punct", ")", "',' or ')'")
            field = _by_value(field, values)
            if negate and field.startswith(_KEYED):
                return {field: {"$exists": True, "$nin": values}}
            return {field: {"$nin" if negate else "$in": values}}
        if negate:
            self.fail(self.peek()[2], "expected 'in' after 'not'")
        for word in ("like", "ilike"):
            if self.take("kw", word):
                kind, text, pos = self.peek()
                if kind != "str":
                    self.fail(pos, f"expected a 'quoted pattern' after '{word}'")
                pattern = self.value()
                return {_by_value(field, [pattern]): {"$" + word: pattern}}
        if self.take("kw", "is"):
            exists = self.take("kw", "not")
            self.expect("kw", "null", "'null'")
            return {field: {"$exists": exists}}
        if self.take("kw", "exists"):
            return {field: {"$exists": True}}
        self.fail(pos, "expected an operator (= != < <= > >= ~ like ilike in, is null)")
        raise AssertionError("unreachable")

    def value(self) -> Any:
        kind, text, pos = self.peek()
        self.i += 1
        if kind == "str":
            return text[1:-1]  # as MLflow reads it: a backslash is kept (it only keeps a quote from ending it)
        if kind == "num":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "kw" and text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        self.i -= 1
        self.fail(pos, "expected a value (a number, 'quoted string', true, false or null)")
        raise AssertionError("unreachable")


#: MLflow's names of the kinds of field -> git-prov's
_FAMILIES = {"metric": "metrics", "metrics": "metrics", "param": "params", "params": "params",
             "parameter": "params", "parameters": "params", "tag": "tags", "tags": "tags",
             "attribute": "attributes", "attributes": "attributes", "attr": "attributes", "run": "attributes"}
#: MLflow's run attributes (``attributes.<name>`` or bare) -> the field that answers them
MLFLOW_ATTRIBUTES = {
    "run_id": "mlflow.run_id", "run_name": "mlflow.run_name", "run name": "mlflow.run_name",
    "Run name": "mlflow.run_name", "Run Name": "mlflow.run_name", "status": "mlflow.status",
    "start_time": "mlflow.start_time", "created": "mlflow.start_time", "Created": "mlflow.start_time",
    "end_time": "mlflow.end_time", "user_id": "mlflow.user_id", "artifact_uri": "mlflow.artifact_uri",
}
#: bare names that are git-prov fields too: MLflow's meaning only for MLflow-shaped values
_SHARED = {"status", "created"}
#: fields that may have no value, which ``!=`` and ``not in`` require to have one (as MLflow does:
#: a run without the param, or a running run's ``end_time``, is neither equal nor different)
_KEYED = ("params.", "metrics.", "tags.", "mlflow.")


def named_field(text: str) -> str:
    """The git-prov field a field as written names (``metric.`my-metric``` ->
    ``metrics.my-metric``, ``attributes.start_time`` -> ``mlflow.start_time``)."""
    parts = [next(g for g in m.groups() if g is not None) for m in _PART.finditer(text)]
    return mlflow_field(parts) if parts else text


def mlflow_field(parts: list[str]) -> str:
    """The git-prov field for a field written as ``parts`` (``["metric", "acc"]`` ->
    ``metrics.acc``, ``["attributes", "start_time"]`` -> ``mlflow.start_time``)."""
    if len(parts) == 1:
        name = parts[0]
        if name in MLFLOW_ATTRIBUTES and name not in _SHARED:
            return MLFLOW_ATTRIBUTES[name]
        return name
    family = _FAMILIES.get(parts[0])
    key = ".".join(parts[1:])
    if family is None:
        if parts[0] in ("dataset", "datasets"):
            raise QueryError(f"{'.'.join(parts)!r}: MLflow's dataset fields are not supported; use "
                             f"inputs.datasets.<key> (a digest) or inputs.datasets (the keys)")
        return ".".join(parts)
    if family == "attributes" and key in MLFLOW_ATTRIBUTES:
        return MLFLOW_ATTRIBUTES[key]
    return f"{family}.{key}"


def _by_value(field: str, values: list[Any]) -> str:
    """Bare ``status`` and ``created`` are git-prov's fields (``'finished'``, an RFC 3339
    string), or MLflow's when the values are MLflow's (``'FINISHED'``, milliseconds)."""
    if field == "status" and values and all(isinstance(v, str) and v.isupper() for v in values):
        return "mlflow.status"
    if field == "created" and values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in values):
        return "mlflow.start_time"
    return field


def parse_filter(text: str) -> dict[str, Any]:
    """The query dict for an MLflow-style filter string (empty string: every run)."""
    return _Parser(text).parse()


def parse_order(text: str | None) -> list[str] | None:
    """``"metrics.acc desc, created"`` -> ``["metrics.acc desc", "created"]``."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]
