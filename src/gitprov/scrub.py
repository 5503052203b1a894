"""Keeping secrets out of git objects (DESIGN.md §8, docs/design/security.md).

Git history is forever and gets pushed, so values that reach a record pass through
here:

- URLs lose their credentials (``scrub_url``);
- anything shaped like a known token is redacted where it stands (``scrub_text``);
- ``name=value``, ``name: value``, ``"name": "value"``, ``--name value`` and HTTP
  ``Authorization:``/``Cookie:`` headers lose their value when the name looks secret,
  wherever they appear: a whole argument, a ``sh -c`` script, a JSON or YAML argument,
  a URL query, a log line (``scrub_text``, ``scrub_argv``);
- hyperparameters whose names look secret are stored as a marked redaction with a
  keyed digest, so equal values still compare equal (``redact_params``).

A name looks secret when one of its words (split at separators and camelCase) is a
password, token, secret, credential or auth word, or ``key`` as the last word or after a
word such as ``api``/``access``/``private`` (``is_secret_name``). Users add their own
token shapes and name words in ``.provenance.toml`` (``[secrets]``, see ``Scrubber``).
Environment variables are never dumped: callers take values only from an allow-list
(see ``fingerprint.CI_VARIABLES``).
"""

from __future__ import annotations

import functools
import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # the capture hook loads this module (CI values): no typing at run time
    from collections.abc import Callable, Iterable
    from typing import Any

__all__ = [
    "REDACTED", "REDACTION_FIELD", "Scrubber", "contains_token", "is_redaction", "is_secret_name",
    "redact_params", "scrub_argv", "scrub_text", "scrub_url",
]

REDACTED = "[REDACTED]"
#: a redacted hyperparameter is stored as ``{"$redacted": "hmac-sha256:<hex>"}``
REDACTION_FIELD = "$redacted"
_REDACTION_PREFIX = "hmac-sha256:"

_TOKEN_PATTERNS = [
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}",  # AWS access key id
    r"gh[pousr]_[A-Za-z0-9]{20,255}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{20,255}",  # GitHub fine-grained PAT
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab personal access token
    r"gl(?:dt|ptt|rt|cbt|imt|soat|ffct)-[A-Za-z0-9_\-]{20,}",  # other GitLab tokens
    r"xox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",  # Slack webhooks
    r"(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",  # OpenAI keys
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face tokens
    r"AIza[0-9A-Za-z_\-]{35}",  # Google API keys
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JSON Web Tokens
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
]
_URL_CREDS_RE = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://)([^/\s]{1,512})@(?=[^@/\s]*(?:[/\s]|$))")

# -- names ---------------------------------------------------------------------------

#: a name holding one of these words is secret
_SECRET_WORDS = frozenset({
    "password", "passwd", "pass", "pwd", "passphrase", "passcode", "secret", "secrets", "token",
    "auth", "authorization", "credential", "credentials", "creds", "cookie", "apikey",
    "privatekey", "accesskey", "secretkey", "sshkey", "authkey", "signingkey", "masterkey",
    "authtoken", "accesstoken", "refreshtoken", "idtoken", "bearer", "jwt",
})
#: ... or a word ending in one of these (``dbpassword``, ``mysqlpwd``, ``hubtoken``)
_SECRET_SUFFIXES = ("password", "passwd", "pwd", "passphrase", "secret", "token")
#: ``key``/``keys`` is secret as the last word, or after one of these (``access_key_id``)
_KEY_QUALIFIERS = frozenset({
    "api", "access", "secret", "private", "ssh", "signing", "encryption", "master", "auth",
    "client", "license", "session", "service", "account", "deploy", "gpg", "pgp", "rsa",
    "hmac", "jwt", "app", "admin", "write", "read", "upload", "storage", "db", "aws", "gcp",
})
_CAMEL_RE = (re.compile(r"([a-z0-9])([A-Z])"), re.compile(r"([A-Z]+)([A-Z][a-z])"))
_SPLIT_RE = re.compile(r"[^a-z0-9]+")


def _words(name: str) -> list[str]:
    for camel in _CAMEL_RE:
        name = camel.sub(r"\1_\2", name)
    return [w for w in _SPLIT_RE.split(name.lower()) if w]


def _name_rule(extra_words: frozenset[str]) -> Callable[[str], bool]:
    @functools.lru_cache(maxsize=4096)
    def is_secret(name: str) -> bool:
        words = _words(name)
        for i, word in enumerate(words):
            if word in _SECRET_WORDS or word in extra_words:
                return True
            if word.endswith(_SECRET_SUFFIXES) and word not in ("tokens",):
                return True
            if word in ("key", "keys") and (i == len(words) - 1 or (i and words[i - 1] in _KEY_QUALIFIERS)):
                return True
        return False

    return is_secret


# -- text ------------------------------------------------------------------------------

_HEADER_RE = re.compile(
    r"(?i)(?<![\w-])((?:proxy-)?authorization|(?:set-)?cookie|x-[a-z0-9-]*(?:token|key|secret|auth)[a-z0-9-]*)"
    r"(\s*:\s*)(?!\[REDACTED\])([^\r\n\"']+)")
#: an unquoted value is matched up to 256 characters (so a long run of ``a=a=a…`` costs
#: linear time) and a secret one is then followed to its end (``_UNQUOTED_TAIL``)
_VALUE = r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|(?:Bearer|Basic|Token|Digest)\s+[^\s"',;&]{1,256}|[^\s"',;&{}\[\]]{1,256})"""
_UNQUOTED_TAIL = re.compile(r"""[^\s"',;&{}\[\]]*""")
#: ``name=value``, ``name: value``, ``"name": "value"`` (JSON, YAML, URL queries, env)
_PAIR_RE = re.compile(r"(?<![\w.-])(?P<q>[\"']?)(?P<name>[A-Za-z_][\w.-]{0,63})(?P=q)(?P<sep>\s*[:=]\s*)" + _VALUE)
#: ``--name value`` / ``-name=value`` inside a script or command string
_OPTION_RE = re.compile(r"(?<![\w-])(?P<name>--?[A-Za-z][\w.-]{0,63})(?P<sep>=|[ \t]+)" + _VALUE)


class Scrubber:
    """The redaction rules, with a repository's own additions (``[secrets]`` settings):
    ``patterns`` are regular expressions of secret values, ``names`` extra secret words."""

    def __init__(self, patterns: Iterable[str] = (), names: Iterable[str] = ()) -> None:
        extra = [p for p in patterns if p]
        self.token_re = re.compile("|".join(f"(?:{p})" for p in [*_TOKEN_PATTERNS, *extra]))
        self.is_secret_name = _name_rule(frozenset(w.lower() for w in names if w))

    # values ---------------------------------------------------------------------------
    def contains_token(self, text: str) -> bool:
        """Does ``text`` hold a known token shape or URL credentials?"""
        return bool(self.token_re.search(text) or _URL_CREDS_RE.search(text))

    def scrub_text(self, text: str) -> str:
        """``text`` with URL credentials, token shapes and the values of secret-named
        pairs, options and headers redacted (free text, scripts, JSON, YAML)."""
        text = scrub_url(self.token_re.sub(REDACTED, text))
        if not any(c in text for c in ":= \t"):
            return text
        text = _HEADER_RE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
        return self._redact_pairs(_PAIR_RE, self._redact_pairs(_OPTION_RE, text))

    def _redact_pairs(self, pattern: re.Pattern[str], text: str) -> str:
        """Redact the value of each secret-named match of ``pattern``; a match whose name
        is not secret is passed over from its separator on, so a pair inside its value
        (``url=https://h/?token=x``, ``f(password=x)``) is still found."""
        out: list[str] = []
        done = pos = 0
        while (m := pattern.search(text, pos)) is not None:
            value = m.group("value")
            if not self.is_secret_name(m.group("name").lstrip("-")) or value.strip("\"'") == REDACTED:
                pos = m.start("sep") + 1
                continue
            quote = value[0] if value[:1] in "\"'" and len(value) > 1 else ""
            end = m.end() if quote else _UNQUOTED_TAIL.match(text, m.end()).end()  # type: ignore[union-attr]
            out += [text[done:m.start("value")], quote, REDACTED, quote]
            done = pos = end
        return "".join(out) + text[done:] if out else text

    def scrub_argv(self, argv: list[str]) -> list[str]:
        """A command line safe to store: the value of every secret option or
        ``NAME=value`` argument, token shapes and secrets inside script, JSON and
        header arguments redacted; as many arguments as given."""
        out: list[str] = []
        redact_next = False
        for arg in argv:
            if redact_next:
                out.append(REDACTED)
                redact_next = False
                continue
            name, eq, _ = arg.partition("=")
            bare = name.lstrip("-")
            if arg.startswith("-") and bare and self.is_secret_name(bare) and " " not in name:
                if eq:
                    out.append(f"{name}={REDACTED}")
                else:
                    out.append(arg)
                    redact_next = True
                continue
            if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name) and self.is_secret_name(name):
                out.append(f"{name}={REDACTED}")
                continue
            out.append(self.scrub_text(arg))
        return out

    # hyperparameters --------------------------------------------------------------------
    def redact_params(self, params: dict[str, Any], key: bytes | Callable[[], bytes]) -> dict[str, Any]:
        """``params`` with the value of every secret-named key (at any depth) replaced
        by ``{"$redacted": "hmac-sha256:<hex>"}``, a digest keyed by ``key`` (or by what
        ``key()`` returns, asked only when there is something to redact)."""
        return {k: self._redact(k, v, key) for k, v in params.items()}

    def _redact(self, name: str, value: Any, key: bytes | Callable[[], bytes]) -> Any:
        if is_redaction(value):
            return value
        if self.is_secret_name(name) and value is not None:
            return redaction_of(value, key if isinstance(key, bytes) else key())
        if isinstance(value, dict):
            return {k: self._redact(k, v, key) if isinstance(k, str) else v for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._redact("", v, key) for v in value]
        return value


def redaction_of(value: Any, key: bytes) -> dict[str, str]:
    """The marked redaction of ``value``: equal values (under one key) give equal marks."""
    import hashlib
    import hmac

    import msgspec

    canonical = msgspec.json.encode(value, order="sorted")
    digest = hmac.new(key, canonical, hashlib.sha256).hexdigest()
    return {REDACTION_FIELD: _REDACTION_PREFIX + digest}


def is_redaction(value: Any) -> bool:
    """Is ``value`` a marked redaction, as ``redact_params`` writes it?"""
    if not (isinstance(value, dict) and len(value) == 1):
        return False
    mark = value.get(REDACTION_FIELD)
    return isinstance(mark, str) and bool(re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", mark))


DEFAULT = Scrubber()


def is_secret_name(name: str) -> bool:
    """True for names like ``*_TOKEN``, ``db-pass``, ``apiKey``, ``ssh_key``, ``ACCESS_KEY_ID``."""
    return DEFAULT.is_secret_name(name)


def scrub_url(url: str) -> str:
    """Drop ``user:password@`` (or a bare token) from any URL in ``url``."""
    return _URL_CREDS_RE.sub(r"\1", url)


def scrub_text(text: str) -> str:
    return DEFAULT.scrub_text(text)


def contains_token(text: str) -> bool:
    return DEFAULT.contains_token(text)


def scrub_argv(argv: list[str]) -> list[str]:
    return DEFAULT.scrub_argv(argv)


def redact_params(params: dict[str, Any], key: bytes | Callable[[], bytes]) -> dict[str, Any]:
    return DEFAULT.redact_params(params, key)


scrub_text.__doc__ = Scrubber.scrub_text.__doc__
contains_token.__doc__ = Scrubber.contains_token.__doc__
scrub_argv.__doc__ = Scrubber.scrub_argv.__doc__
redact_params.__doc__ = Scrubber.redact_params.__doc__
