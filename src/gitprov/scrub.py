"""Keeping secrets out of git objects (DESIGN.md §8).

Git history is forever and gets pushed, so values that reach a record pass through
here: URLs lose their credentials, command lines lose secret options and anything
shaped like a known token. Environment variables are never dumped: callers take
values only from an allow-list (see ``fingerprint.CI_VARIABLES``).
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "is_secret_name", "scrub_argv", "scrub_text", "scrub_url"]

REDACTED = "[REDACTED]"

_TOKEN_PATTERNS = [
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}",  # AWS access key id
    r"gh[pousr]_[A-Za-z0-9]{20,255}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{20,255}",  # GitHub fine-grained PAT
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab personal access token
    r"gl(?:dt|ptt|rt|cbt|imt|soat|ffct)-[A-Za-z0-9_\-]{20,}",  # other GitLab tokens
    r"xox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",  # Slack webhooks
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",  # OpenAI keys
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face tokens
    r"AIza[0-9A-Za-z_\-]{35}",  # Google API keys
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
]
_TOKEN_RE = re.compile("|".join(f"(?:{p})" for p in _TOKEN_PATTERNS))
_URL_CREDS_RE = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://)([^/@\s]{1,512})@")
_SECRET_NAME_RE = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH|_KEY$|^KEY$)",
    re.IGNORECASE,
)
_SECRET_OPTION_RE = re.compile(
    r"^(--?[A-Za-z0-9_\-]*(?:token|secret|password|passwd|passphrase|api[-_]?key|access[-_]?key|private[-_]?key|credential|auth)[A-Za-z0-9_\-]*)(=)(.*)$",
    re.IGNORECASE,
)
_ASSIGNMENT_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def is_secret_name(name: str) -> bool:
    """True for names like ``*_TOKEN``, ``*_SECRET``, ``*_KEY``, ``*PASSWORD*``."""
    return bool(_SECRET_NAME_RE.search(name))


def scrub_url(url: str) -> str:
    """Drop ``user:password@`` (or a bare token) from any URL in ``url``."""
    return _URL_CREDS_RE.sub(r"\1", url)


def scrub_text(text: str) -> str:
    """Redact known token shapes and URL credentials anywhere in ``text``."""
    return _TOKEN_RE.sub(REDACTED, scrub_url(text))


def scrub_argv(argv: list[str]) -> list[str]:
    """A command line safe to store: secret option values and tokens redacted."""
    out: list[str] = []
    redact_next = False
    for arg in argv:
        if redact_next:
            out.append(REDACTED)
            redact_next = False
            continue
        m = _SECRET_OPTION_RE.match(arg)
        if m:
            out.append(f"{m.group(1)}={REDACTED}")
            continue
        if arg.startswith("-") and is_secret_name(arg.lstrip("-").replace("-", "_")):
            out.append(arg)
            redact_next = True
            continue
        a = _ASSIGNMENT_RE.match(arg)
        if a and is_secret_name(a.group(1)):
            out.append(f"{a.group(1)}={REDACTED}")
            continue
        out.append(scrub_text(arg))
    return out
