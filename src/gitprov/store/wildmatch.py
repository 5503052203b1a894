"""git's glob matching (``wildmatch.c``), as ``includeIf`` conditions use it.

Bytes in, like git: ``?`` and ``[...]`` match one byte, ``*`` does not cross ``/``
with ``pathname`` (git's ``WM_PATHNAME``), ``**`` between slashes matches any number
of directories, ``\\`` quotes the next character, classes take ranges, ``!``/``^``
negation and ``[:alpha:]``-style names; ``casefold`` folds ASCII letters
(``WM_CASEFOLD``).
"""

from __future__ import annotations

__all__ = ["wildmatch"]

_MATCH, _NOMATCH, _ABORT_ALL, _ABORT_TO_STARSTAR = 0, 1, -1, -2
_SLASH, _STAR, _BACKSLASH = ord("/"), ord("*"), ord("\\")
_GLOB_SPECIAL = frozenset(b"*?[\\")


def _lower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def _in_class(name: bytes, c: int, casefold: bool) -> bool | None:
    """``c`` in ``[:name:]``, in git's ASCII ctype (None: no such class, git aborts)."""
    upper, lower, digit = 65 <= c <= 90, 97 <= c <= 122, 48 <= c <= 57
    tests = {
        b"alnum": upper or lower or digit, b"alpha": upper or lower, b"blank": c in (9, 32),
        b"cntrl": c < 32 or c == 127, b"digit": digit, b"graph": 33 <= c <= 126, b"lower": lower,
        b"print": 32 <= c <= 126, b"punct": 33 <= c <= 126 and not (upper or lower or digit),
        b"space": c in (9, 10, 13, 32), b"upper": upper or (casefold and lower),
        b"xdigit": digit or 65 <= c <= 70 or 97 <= c <= 102,
    }
    return tests.get(name)


def _dowild(p: bytes, pi: int, text: bytes, ti: int, pathname: bool, casefold: bool) -> int:
    plen, tlen = len(p), len(text)
    while pi < plen:
        p_ch = p[pi]
        t_ch = text[ti] if ti < tlen else 0
        if ti >= tlen and p_ch != _STAR:
            return _ABORT_ALL
        if casefold:
            t_ch, p_ch = _lower(t_ch), _lower(p_ch)
        if p_ch == ord("?"):
            if pathname and t_ch == _SLASH:
                return _NOMATCH
        elif p_ch == _STAR:
            pi += 1
            if pi < plen and p[pi] == _STAR:
                prev = pi - 2
                while pi < plen and p[pi] == _STAR:
                    pi += 1
                if not pathname:
                    match_slash = True
                elif (prev < 0 or p[prev] == _SLASH) and (
                        pi == plen or p[pi] == _SLASH or (p[pi] == _BACKSLASH and p[pi + 1:pi + 2] == b"/")):
                    # "foo/**/bar" also matches "foo/bar": try "**/" as nothing first
                    if pi < plen and p[pi] == _SLASH and _dowild(p, pi + 1, text, ti, pathname, casefold) == _MATCH:
                        return _MATCH
                    match_slash = True
                else:
                    match_slash = False
            else:
                match_slash = not pathname
            if pi == plen:  # a trailing "**" matches everything, "*" the rest of one name
                return _NOMATCH if not match_slash and _SLASH in text[ti:] else _MATCH
            if not match_slash and p[pi] == _SLASH:  # "*/" matches up to the next slash
                slash = text.find(b"/", ti)
                if slash < 0:
                    return _NOMATCH
                ti = slash
                pi += 1
                ti += 1
                continue
            while True:
                if ti >= tlen:
                    break
                if p[pi] not in _GLOB_SPECIAL:  # skip ahead to the literal after the star
                    want = _lower(p[pi]) if casefold else p[pi]
                    while ti < tlen and (match_slash or text[ti] != _SLASH):
                        if (_lower(text[ti]) if casefold else text[ti]) == want:
                            break
                        ti += 1
                    got = (_lower(text[ti]) if casefold else text[ti]) if ti < tlen else 0
                    if got != want:
                        return _NOMATCH
                t_ch = text[ti]
                matched = _dowild(p, pi, text, ti, pathname, casefold)
                if matched != _NOMATCH:
                    if not match_slash or matched != _ABORT_TO_STARSTAR:
                        return matched
                elif not match_slash and t_ch == _SLASH:
                    return _ABORT_TO_STARSTAR
                ti += 1
            return _ABORT_ALL
        elif p_ch == ord("["):
            result = _bracket(p, pi, t_ch, pathname, casefold)
            if isinstance(result, tuple):
                return result[0]
            pi = result
        else:
            if p_ch == _BACKSLASH:  # the next character literally (not case-folded, as in git)
                pi += 1
                p_ch = p[pi] if pi < plen else 0
            if t_ch != p_ch:
                return _NOMATCH
        pi += 1
        ti += 1
    return _NOMATCH if ti < tlen else _MATCH


def _bracket(p: bytes, pi: int, t_ch: int, pathname: bool, casefold: bool) -> int | tuple[int]:
    """Match ``t_ch`` against the class opening at ``p[pi]``: the index of its ``]``,
    or ``(result,)`` when the match ends here."""
    plen = len(p)

    def at(i: int) -> int:
        return p[i] if i < plen else 0

    pi += 1
    p_ch = at(pi)
    if p_ch == ord("^"):
        p_ch = ord("!")
    negated = p_ch == ord("!")
    if negated:
        pi += 1
        p_ch = at(pi)
    prev_ch = 0
    matched = False
    while True:
        if not p_ch:
            return (_ABORT_ALL,)
        if p_ch == _BACKSLASH:
            pi += 1
            p_ch = at(pi)
            if not p_ch:
                return (_ABORT_ALL,)
            if t_ch == p_ch:
                matched = True
        elif p_ch == ord("-") and prev_ch and at(pi + 1) and at(pi + 1) != ord("]"):
            pi += 1
            p_ch = at(pi)
            if p_ch == _BACKSLASH:
                pi += 1
                p_ch = at(pi)
                if not p_ch:
                    return (_ABORT_ALL,)
            if prev_ch <= t_ch <= p_ch or (casefold and 97 <= t_ch <= 122 and prev_ch <= t_ch - 32 <= p_ch):
                matched = True
            p_ch = 0
        elif p_ch == ord("[") and at(pi + 1) == ord(":"):
            start = pi = pi + 2
            while at(pi) and at(pi) != ord("]"):
                pi += 1
            if not at(pi):
                return (_ABORT_ALL,)
            if pi - start - 1 < 0 or p[pi - 1] != ord(":"):  # no ":]": a plain "["
                pi = start - 2
                p_ch = ord("[")
                if t_ch == p_ch:
                    matched = True
            else:
                found = _in_class(p[start:pi - 1], t_ch, casefold)
                if found is None:
                    return (_ABORT_ALL,)
                matched = matched or found
                p_ch = 0
        elif t_ch == p_ch:
            matched = True
        prev_ch = p_ch
        pi += 1
        p_ch = at(pi)
        if p_ch == ord("]"):
            break
    if matched == negated or (pathname and t_ch == _SLASH):
        return (_NOMATCH,)
    return pi


def wildmatch(pattern: str | bytes, text: str | bytes, *, pathname: bool = True, casefold: bool = False) -> bool:
    """Whether ``text`` matches the glob ``pattern`` as git's ``wildmatch`` decides."""
    p = pattern if isinstance(pattern, bytes) else pattern.encode("utf-8", "surrogateescape")
    t = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    return _dowild(p, 0, t, 0, pathname, casefold) == _MATCH
