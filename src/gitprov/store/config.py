"""Reading git config files (system, global, repository) without spawning git.

Covers git's config syntax: sections, ``[section "sub"]`` and the legacy
``[section.sub]``, quoting, escapes, inline comments, line continuations and
valueless booleans. ``include`` directives are not followed. Writing config goes
through ``git config`` (see ``api.init``), which is not on a hot path.
"""

from __future__ import annotations

import os

__all__ = ["GitConfig", "local_config_values", "parse_config", "set_local_config"]

_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "\\": "\\", '"': '"'}


def _parse_value(text: str) -> str:
    out = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            out.append(_ESCAPES.get(text[i], text[i]))
        elif ch in "#;" and not quoted:
            break
        else:
            out.append(ch)
        i += 1
    return "".join(out).strip() if not quoted else "".join(out)


def _section_name(header: str) -> str:
    inner = header.strip()[1:]
    inner = inner[: inner.rindex("]")] if "]" in inner else inner
    if '"' in inner:
        name, _, sub = inner.partition('"')
        sub = sub[: sub.rindex('"')] if '"' in sub else sub
        sub = sub.replace('\\"', '"').replace("\\\\", "\\")
        return f"{name.strip().lower()}.{sub}"
    name, dot, sub = inner.strip().partition(".")
    return f"{name.lower()}.{sub.lower()}" if dot else name.lower()


def parse_config(text: str) -> list[tuple[str, str | None]]:
    """``[(section.key, value)]`` in file order; a valueless key has value None."""
    items: list[tuple[str, str | None]] = []
    section = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        while line.endswith("\\") and not line.endswith("\\\\") and i < len(lines):
            line = line[:-1] + lines[i].strip()
            i += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            close = line.rfind("]")
            section = _section_name(line[: close + 1])
            rest = line[close + 1 :].strip()
            if not rest or rest[0] in "#;":
                continue
            line = rest
        key, eq, value = line.partition("=")
        key = key.strip().lower()
        if not key or not section:
            continue
        items.append((f"{section}.{key}", _parse_value(value) if eq else None))
    return items


class GitConfig:
    """Merged view of the config files git would read for one repository."""

    def __init__(self, values: dict[str, list[str | None]]) -> None:
        self._values = values

    @classmethod
    def for_repository(cls, common_dir: str | None) -> GitConfig:
        paths = []
        if not os.environ.get("GIT_CONFIG_NOSYSTEM"):
            paths.append(os.environ.get("GIT_CONFIG_SYSTEM", "/etc/gitconfig"))
        if "GIT_CONFIG_GLOBAL" in os.environ:
            paths.append(os.environ["GIT_CONFIG_GLOBAL"])
        else:
            home = os.path.expanduser("~")
            xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
            paths += [os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig")]
        if common_dir:
            paths.append(os.path.join(common_dir, "config"))
        values: dict[str, list[str | None]] = {}
        for path in paths:
            if not path:
                continue
            try:
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except OSError:
                continue
            for key, value in parse_config(text):
                values.setdefault(key, []).append(value)
        return cls(values)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The last value of ``section[.sub].key`` (section and key case-insensitive)."""
        section, _, name = key.rpartition(".")
        head, dot, sub = section.partition(".")
        norm = f"{head.lower()}.{sub}.{name.lower()}" if dot else f"{section.lower()}.{name.lower()}"
        vals = self._values.get(norm)
        if not vals:
            return default
        value = vals[-1]
        return "true" if value is None else value

    def has_section(self, section: str) -> bool:
        """Any key in ``section`` (case-insensitive), e.g. ``include`` / ``includeIf``."""
        prefix = section.lower() + "."
        return any(key.lower().startswith(prefix) for key in self._values)

    def remote_names(self) -> list[str]:
        """Names of the remotes that have a URL (``remote.<name>.url``), in config order."""
        names = [key[len("remote."):-len(".url")] for key in self._values if key.startswith("remote.") and key.endswith(".url")]
        return list(dict.fromkeys(names))

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self.get(key)
        if value is None:
            return default
        return value.strip().lower() in ("true", "yes", "on", "1", "")


def local_config_values(git_dir: str, key: str) -> list[str]:
    """Every value of ``key`` in the repository's own config (``git config --local``)."""
    from . import gitbin

    proc = gitbin.run(["config", "--local", "--get-all", key], git_dir=git_dir, text=True)
    return proc.stdout.split() if proc.returncode == 0 else []


def set_local_config(git_dir: str, key: str, value: str, *, add: bool = False) -> None:
    """Set (or, with ``add``, add) ``key`` in the repository's own config, with git
    itself, as ``prov init`` does: writing config is git's business."""
    from ..errors import WriteError
    from . import gitbin

    gitbin.run_checked(["config", "--local", *(["--add", key, value] if add else [key, value])], git_dir=git_dir,
                       text=True, what=f"set git config {key}", error=WriteError)
