"""MLflow-style filter strings (``params.lr > 0.01 and metrics.acc >= 0.9``) parsed
into the MongoDB-style dicts ``compile_query`` takes.

Grammar (keywords in any case)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := FIELD OP VALUE | FIELD ["not"] "in" "(" VALUE ("," VALUE)* ")"
                | FIELD "is" ["not"] "null" | FIELD "exists"
    OP         := = == != <> < <= > >= ~   (~ is a regular-expression search)
    VALUE      := 'string' | "string" | number | true | false | null
    FIELD      := name(.name)*, a name with spaces or symbols in `backticks`
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import QueryError

__all__ = ["parse_filter", "parse_order"]

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<op>>=|<=|!=|<>|==|=|>|<|~)
      | (?P<punct>[(),])
      | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<field>(?:[A-Za-z_][\w\-/:@]*|`[^`]+`)(?:\.(?:[\w\-/:@]+|`[^`]+`))*)
    """,
    re.X,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false", "exists"}
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
        field = ".".join(part.strip("`") for part in re.findall(r"`[^`]+`|[^.`]+", value))
        kind, op, pos = self.peek()
        if kind == "op":
            self.i += 1
            return {field: {_OPS[op]: self.value()}}
        negate = self.take("kw", "not")
        if self.take("kw", "in"):
            self.expect("punct", "(", "'(' after 'in'")
            values = [self.value()]
            while self.take("punct", ","):
                values.append(self.value())
            self.expect("punct", ")", "',' or ')'")
            return {field: {"$nin" if negate else "$in": values}}
        if negate:
            self.fail(self.peek()[2], "expected 'in' after 'not'")
        if self.take("kw", "is"):
            exists = self.take("kw", "not")
            self.expect("kw", "null", "'null'")
            return {field: {"$exists": exists}}
        if self.take("kw", "exists"):
            return {field: {"$exists": True}}
        self.fail(pos, "expected an operator (= != < <= > >= ~ in, is null)")
        raise AssertionError("unreachable")

    def value(self) -> Any:
        kind, text, pos = self.peek()
        self.i += 1
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "num":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "kw" and text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        self.i -= 1
        self.fail(pos, "expected a value (a number, 'quoted string', true, false or null)")
        raise AssertionError("unreachable")


def parse_filter(text: str) -> dict[str, Any]:
    """The query dict for an MLflow-style filter string (empty string: every run)."""
    return _Parser(text).parse()


def parse_order(text: str | None) -> list[str] | None:
    """``"metrics.acc desc, created"`` -> ``["metrics.acc desc", "created"]``."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]
