"""git's config syntax: a config file's text, ``git -c`` and ``GIT_CONFIG_COUNT`` entries.

Follows git's ``config.c``: ``[section]``, ``[section "sub"]`` (subsection kept as
written, backslash quoting) and the legacy ``[section.sub]`` (lowercased); a variable
name starts with a letter and has letters, digits and ``-``; a value may be quoted,
escaped (``\\n \\t \\b \\\\ \\"``, any other escape is an error), continued with a
trailing backslash and followed by a ``#``/``;`` comment; unquoted whitespace inside
it becomes one space per character and is trimmed at both ends. A variable with no
``=`` has the value None ("true" for a boolean, an error for a string); ``key =`` has
the value "". Keys come out canonical: section and name lowercased, subsection as is.
A line git rejects raises ``ConfigError`` naming the file and line, as git dies on it.
"""

from __future__ import annotations

import os
import re

from ..errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["canonical_key", "parse_config", "parse_parameters"]

Entry = tuple[str, "str | None"]  # (canonical key, value)

#: blank space, then a comment, a ``[section]`` or ``[section "sub"]`` with no escape,
#: or a bare key or ``key = value`` whose value has no quote or escape (its comment
#: dropped; the value is trimmed afterwards)
_FAST = re.compile(r"""[ \t\r\n]*(?:
    ([#;][^\n]*)
  | \[([A-Za-z0-9.-]+)(?:[ \t\r]+(")([^"\\\n]*)")?\]
  | ([A-Za-z][A-Za-z0-9-]*)[ \t]*(?:(=)([^"\\\n#;]*)(?:[#;][^\n]*)?)?(?=\n|\Z)
)?""", re.X)
#: the patterns below are compiled on first use (re caches them): a process reading
#: plain config needs none of them
_HEADER = r'\[([A-Za-z0-9.-]*)(?:\]|[ \t\r]+"((?:[^"\\\n]|\\[^\n])*)"\])'
_NAME = r"[A-Za-z][A-Za-z0-9-]*[ \t]*"
_UNESCAPE = r"\\(.)"
_SPACES = str.maketrans("\t\r", "  ")
_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "\\": "\\", '"': '"'}
_KEY_PART = r"[A-Za-z0-9-]*"
_NAME_PART = r"[A-Za-z][A-Za-z0-9-]*"
_COUNT = r"[ \t\n\v\f\r]*\+?(-?[0-9]+)"  # strtoul's


class _BadLine(Exception):
    def __init__(self, pos: int) -> None:
        self.pos = pos


def _quoted_value(text: str, pos: int) -> tuple[str, int]:
    """git's ``parse_value`` from ``pos`` (just after ``=``): the value and where the
    next line starts. Raises ``_BadLine`` for an open quote or an unknown escape."""
    out: list[str] = []
    quote = comment = False
    space = 0
    end = len(text)
    while True:
        c = text[pos] if pos < end else "\n"
        pos += 1
        if c == "\n":
            if quote:
                raise _BadLine(pos - 1)
            return "".join(out), pos
        if comment:
            continue
        if c in " \t\r" and not quote:
            if out:
                space += 1
            continue
        if not quote and c in "#;":
            comment = True
            continue
        if space:
            out.append(" " * space)
            space = 0
        if c == "\\":
            c = text[pos] if pos < end else "\n"
            pos += 1
            if c == "\n":
                continue
            if c not in _ESCAPES:
                raise _BadLine(pos - 1)
            out.append(_ESCAPES[c])
        elif c == '"':
            quote = not quote
        else:
            out.append(c)


def parse_config(text: str, origin: str = "config") -> list[Entry]:
    """``[(canonical key, value)]`` of a config file's text, in file order; ``origin``
    names the file in the error for a line git would reject."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    pos = 1 if text.startswith("\ufeff") else 0
    end = len(text)
    entries: list[Entry] = []
    section = ""
    fast = _FAST.match
    try:
        while True:
            m = fast(text, pos)  # always matches (blank space at least)
            comment, header, quote, sub, name, equals, value = m.groups()  # type: ignore[union-attr]
            if name is not None:  # a bare key, or a value with no quote or escape
                name = name.lower()
                if equals:
                    value = value.strip(" \t\r")
                    if "\t" in value or "\r" in value:
                        value = value.translate(_SPACES)
                entries.append((f"{section}.{name}" if section else name, value))
                pos = m.end() + 1  # type: ignore[union-attr]
                continue
            pos = m.end()  # type: ignore[union-attr]
            if header is not None:
                section = f"{header.lower()}.{sub}" if quote else header.lower()
            elif comment is None:
                if pos >= end:
                    return entries
                pos, section = _step(text, pos, section, entries)
    except _BadLine as bad:
        line = text.count("\n", 0, min(bad.pos, end)) + 1
        raise ConfigError(f"bad config line {line} in {origin}; fix it with 'git config --edit' or an editor") from None


def _step(text: str, pos: int, section: str, entries: list[Entry]) -> tuple[int, str]:
    """What the fast pattern leaves at ``pos``: a ``[section "subsection"]`` header or
    a value with quotes or escapes; anything else is a line git rejects."""
    if text[pos] == "[":
        m = re.compile(_HEADER).match(text, pos)
        if m is None or not (m.group(1) or m.group(2) is not None):
            raise _BadLine(pos)
        base, sub = m.group(1).lower(), m.group(2)
        if sub is not None and "\\" in sub:
            sub = re.compile(_UNESCAPE).sub(r"\1", sub)
        return m.end(), base if sub is None else f"{base}.{sub}"
    m = re.compile(_NAME).match(text, pos)
    if m is None or not text.startswith("=", m.end()):
        raise _BadLine(m.end() if m else pos)
    name = m.group().rstrip(" \t").lower()
    value, pos = _quoted_value(text, m.end() + 1)
    entries.append((f"{section}.{name}" if section else name, value))
    return pos, section


def canonical_key(key: str) -> str | None:
    """A ``section[.subsection].name`` as git stores it (section and name lowercased,
    subsection as given), or None when git rejects it (``git_config_parse_key``)."""
    first, last = key.find("."), key.rfind(".")
    if first < 0 or last == 0 or last == len(key) - 1:
        return None
    section, name = key[:first], key[last + 1:]
    if not re.compile(_KEY_PART).fullmatch(section) or not re.compile(_NAME_PART).fullmatch(name) or "\n" in key:
        return None
    middle = key[first:last + 1]
    return f"{section.lower()}{middle}{name.lower()}"


def _pair(key: str, value: str | None, entries: list[tuple[str, str | None]], where: str) -> None:
    canonical = canonical_key(key) if key else None
    if canonical is None:
        raise ConfigError(f"invalid config key {key!r} in {where}; keys are section.name or section.subsection.name")
    entries.append((canonical, value))


def _sq_step(text: str, pos: int) -> tuple[str, int] | None:
    """git's ``sq_dequote_step``: the shell-quoted word at ``pos`` and where it ends
    (``len(text)`` at the end), or None when it is not one."""
    if pos >= len(text) or text[pos] != "'":
        return None
    out = []
    pos += 1
    while True:
        close = text.find("'", pos)
        if close < 0:
            return None
        out.append(text[pos:close])
        pos = close + 1
        if text.startswith("\\", pos) and pos + 2 < len(text) and text[pos + 1] in "'!" and text[pos + 2] == "'":
            out.append(text[pos + 1])  # '\'' and '\!' resume the quoted word
            pos += 3
            continue
        return "".join(out), pos


def parse_parameters(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """The command-line config git passes to its children, in git's order: the
    ``GIT_CONFIG_COUNT`` pairs (``GIT_CONFIG_KEY_<n>`` / ``GIT_CONFIG_VALUE_<n>``),
    then ``GIT_CONFIG_PARAMETERS`` (``git -c``: ``'key'='value'``, ``'key'=`` for a
    bare key, or the older ``'key=value'``, space separated, shell-quoted)."""
    env = os.environ if environ is None else environ
    entries: list[tuple[str, str | None]] = []
    count = env.get("GIT_CONFIG_COUNT")
    if count is not None:
        number = re.compile(_COUNT).fullmatch(count)
        if (number is None and count) or (number is not None and int(number.group(1)) < 0):
            raise ConfigError("GIT_CONFIG_COUNT is not a number; unset it or set it to the number of GIT_CONFIG_KEY_<n>")
        for i in range(int(number.group(1)) if number else 0):
            key, value = env.get(f"GIT_CONFIG_KEY_{i}"), env.get(f"GIT_CONFIG_VALUE_{i}")
            if key is None or value is None:
                missing = f"GIT_CONFIG_KEY_{i}" if key is None else f"GIT_CONFIG_VALUE_{i}"
                raise ConfigError(f"GIT_CONFIG_COUNT is {count} but {missing} is not set; set it or lower the count")
            _pair(key, value, entries, "GIT_CONFIG_COUNT")
    text = env.get("GIT_CONFIG_PARAMETERS")
    if not text:
        return entries
    bogus = ConfigError("GIT_CONFIG_PARAMETERS is not in git's format ('key'='value' ...); unset it")
    pos = 0
    while pos < len(text):
        word = _sq_step(text, pos)
        if word is None:
            raise bogus
        key, pos = word
        if pos >= len(text) or text[pos] in " \t\n\r":  # the older 'key=value'
            name, eq, value = key.partition("=")
            name = name.strip(" \t\n\r")
            if not name:
                raise bogus
            _pair(name, value if eq else None, entries, "GIT_CONFIG_PARAMETERS")
        elif text[pos] == "=":
            pos += 1
            if text.startswith("'", pos):
                word = _sq_step(text, pos)
                if word is None or (word[1] < len(text) and text[word[1]] not in " \t\n\r"):
                    raise bogus
                value, pos = word
                _pair(key, value, entries, "GIT_CONFIG_PARAMETERS")
            elif pos >= len(text) or text[pos] in " \t\n\r":
                _pair(key, None, entries, "GIT_CONFIG_PARAMETERS")
            else:
                raise bogus
        else:
            raise bogus
        while pos < len(text) and text[pos] in " \t\n\r":
            pos += 1
    return entries
