"""The committer identity git would put on a commit (git's ``ident.c``), for prov's own.

Name: ``GIT_COMMITTER_NAME``, else ``committer.name``, else ``user.name``, else the
account's full name (GECOS). Email: ``GIT_COMMITTER_EMAIL``, else ``committer.email``,
else ``user.email``, else ``EMAIL``, else ``user@host`` (``/etc/mailname`` or a host
name with a domain). Like git, ``user.useConfigOnly`` forbids the guesses, a name or
email set in config (``user``, ``author`` or ``committer``) stops the guessing even
when empty, and the result is stripped of the characters git strips. ``committer``
returns None where ``git commit`` would refuse (no usable name or email).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from ..errors import ConfigError
from .config import GitConfig

__all__ = ["committer", "strip_crud"]

_CRUD = frozenset(chr(c) for c in range(33)) | frozenset(".,:;<>\"\\'")


def strip_crud(text: str) -> str:
    """git's ``strbuf_addstr_without_crud``: trim spaces, control characters and
    ``.,:;<>"\\'`` at both ends; drop ``<``, ``>`` and newlines inside."""
    start, end = 0, len(text)
    while start < end and text[start] in _CRUD:
        start += 1
    while end > start and text[end - 1] in _CRUD:
        end -= 1
    return "".join(ch for ch in text[start:end] if ch not in "<>\n")


def _account() -> tuple[str, str] | None:
    """``(login, GECOS full name)`` of this process's user, None when unknown."""
    try:
        import pwd

        entry = pwd.getpwuid(os.getuid())
    except (ImportError, KeyError):
        return None
    gecos = entry.pw_gecos.split(",", 1)[0]
    login = entry.pw_name
    return login, gecos.replace("&", login[:1].upper() + login[1:]).strip(" \t\n\r")


@functools.lru_cache(maxsize=1)
def _guessed_email() -> str | None:
    """``login@domain`` as git guesses it (None where git calls the guess bogus):
    the first line of /etc/mailname, else a host name with a dot, else the canonical
    name of the host, when it has one."""
    account = _account()
    if account is None:
        return None
    try:
        with open("/etc/mailname", encoding="utf-8", errors="surrogateescape") as f:
            line = f.readline()
        if line:
            return f"{account[0]}@{line.removesuffix(chr(10)).removesuffix(chr(13))}".strip(" \t\n\r")
    except OSError:
        pass
    import socket

    host = socket.gethostname()
    if "." not in host:
        try:
            info = socket.getaddrinfo(host, None, flags=socket.AI_CANONNAME)
            host = info[0][3] if info else ""
        except OSError:
            host = ""
        if "." not in host:
            return None
    return f"{account[0]}@{host}".strip(" \t\n\r")


def _last(config: GitConfig, key: str) -> str | None:
    values = config.get_all(key)
    return values[-1] if values else None


def _guessed_name() -> str | None:
    account = _account()
    return None if account is None else account[1]


def _email_guess() -> str | None:
    email = os.environ.get("EMAIL")
    return email.strip(" \t\n\r") if email else _guessed_email()


def _field(config: GitConfig, field: str, config_only: bool, guess: Callable[[], str | None]) -> str | None:
    """The ``name`` or ``email`` as git's ``fmt_ident`` picks it: ``GIT_COMMITTER_<FIELD>``,
    ``committer.<field>`` when not empty, ``user.<field>`` (empty too) when any config
    sets a ``<field>``, else the guess unless ``user.useConfigOnly``; None where git fails."""
    value = os.environ.get(f"GIT_COMMITTER_{field.upper()}")
    if value is None:
        value = _last(config, f"committer.{field}") or None
    if value is not None:
        return value
    if any(config.get_all(f"{who}.{field}") for who in ("user", "author", "committer")):
        return _last(config, f"user.{field}") or ""
    return None if config_only else guess()


def committer(config: GitConfig) -> tuple[str, str] | None:
    """``(name, email)`` git would commit with, crud stripped; None where git fails."""
    keys = ("user.name", "user.email", "author.name", "author.email", "committer.name", "committer.email")
    if any(None in config.get_all(key) for key in keys):
        return None  # git: "missing value for 'user.name'"
    try:
        config_only = config.get_bool("user.useConfigOnly")
    except ConfigError:
        return None
    email = _field(config, "email", config_only, _email_guess)
    name = _field(config, "name", config_only, _guessed_name) if email is not None else None
    name = strip_crud(name) if name is not None else ""
    if not name:  # none, empty, or only characters git refuses
        return None
    return name, strip_crud(email or "")
