"""git config as git reads it, without spawning git (the hot paths open a repository).

Sources in git's order, later values winning: the system file (``GIT_CONFIG_SYSTEM``,
else /etc/gitconfig; none with ``GIT_CONFIG_NOSYSTEM``), the global files
(``GIT_CONFIG_GLOBAL``, else ``$XDG_CONFIG_HOME/git/config`` then ``~/.gitconfig``),
the repository's ``config``, its ``config.worktree`` when ``extensions.worktreeConfig``
is on, then the command line: ``GIT_CONFIG_COUNT`` pairs and ``GIT_CONFIG_PARAMETERS``
(``git -c``). ``include.path`` and ``includeIf.<condition>.path`` are followed as git
follows them: relative to the including file, ``~/`` expanded, missing files skipped,
at most 10 deep; conditions ``gitdir:``, ``gitdir/i:``, ``onbranch:`` and
``hasconfig:remote.*.url:``. Booleans parse as git's (``get_bool``).

Off the hot path ``GitConfig.from_git`` asks ``git config`` itself (the tests' oracle).
Writing config is git's business too (``set_local_config``).
"""

from __future__ import annotations

import os
import re

from ..errors import ConfigError
from .config_file import canonical_key, parse_config, parse_parameters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["MAX_INCLUDE_DEPTH", "GitConfig", "local_config_values", "parse_bool", "set_local_config"]

MAX_INCLUDE_DEPTH = 10  # git's
_SYSTEM_CONFIG = "/etc/gitconfig"
_INT = r"[ \t\n\v\f\r]*([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))(.*)"  # compiled on first use, with re.S
_OCTAL = r"[+-]?0[0-7]+"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_INT_MAX = (1 << 31) - 1


def _git_int(text: str) -> int | None:
    """git's ``git_parse_int``: C integer syntax (``0x``, leading-0 octal) and a
    ``k``/``m``/``g`` unit, within a C ``int``; None when git rejects it."""
    m = re.compile(_INT, re.S).fullmatch(text)
    if m is None:
        return None
    unit = m.group(2)
    factor = _UNITS.get(unit.lower()) if unit.isascii() else None
    if factor is None:
        return None
    digits = m.group(1)
    value = int(digits, 8) if re.compile(_OCTAL).fullmatch(digits) else int(digits, 0)
    if abs(value) > _INT_MAX // factor:
        return None
    return value * factor


def parse_bool(key: str, value: str | None) -> bool:
    """A config value as git's ``git_config_bool`` reads it: a bare ``key`` is true,
    ``key =`` false, ``true/yes/on`` and ``false/no/off`` in any case, else an integer
    (nonzero is true). Anything else raises ``ConfigError`` naming the key."""
    if value is None:
        return True
    lowered = value.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off", ""):
        return False
    number = _git_int(value)
    if number is None:
        raise ConfigError(f"git config {key} = {value!r} is not a boolean; set it to true or false")
    return number != 0


def _expand(path: str, real_home: bool) -> str | None:
    """git's ``interpolate_path``: ``~/`` and ``~user/``, ``%(prefix)/``; None when the
    home directory is unknown."""
    if path.startswith("%(prefix)/"):
        import shutil

        git = shutil.which("git")
        prefix = os.path.dirname(os.path.dirname(os.path.realpath(git))) if git else "/usr"
        rest = path[len("%(prefix)/"):]
        return rest if rest.startswith("/") else os.path.join(prefix, rest)
    if not path.startswith("~"):
        return path
    slash = path.find("/")
    user, rest = (path[1:], "") if slash < 0 else (path[1:slash], path[slash:])
    if not user:
        home = os.environ.get("HOME")
        if home is None:
            return None
        return (os.path.realpath(home) if real_home else home) + rest
    import pwd

    try:
        return pwd.getpwnam(user).pw_dir + rest
    except KeyError:
        return None


def _is_remote_url(key: str) -> bool:
    return key.startswith("remote.") and key.endswith(".url") and key.rfind(".") > 6


class _Reader:
    """One pass over every config source of a repository, in git's order."""

    def __init__(self, git_dir: str | None, common_dir: str | None, *, unconditional_remote_url: bool = False,
                 parsed: dict[str, list | None] | None = None) -> None:
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.values: dict[str, list[str | None]] = {}
        self.files: list[str] = []
        self.parsed = {} if parsed is None else parsed  # path -> entries, None when unreadable
        self.depth = 0
        self.unconditional_remote_url = unconditional_remote_url  # the hasconfig pass
        self.forbid_remote_url = False
        self.remote_urls: list[str] | None = None
        self.branch: str | None = ""  # "" until HEAD is read

    # -- sources -----------------------------------------------------------------
    def read_all(self) -> None:
        env = os.environ
        nosystem = env.get("GIT_CONFIG_NOSYSTEM")
        try:
            skip_system = nosystem is not None and parse_bool("GIT_CONFIG_NOSYSTEM", nosystem)
        except ConfigError:
            raise ConfigError(f"GIT_CONFIG_NOSYSTEM={nosystem} is not a boolean; set it to 1 or unset it") from None
        if not skip_system:
            system = env.get("GIT_CONFIG_SYSTEM", _SYSTEM_CONFIG)
            self.read_file(system and os.path.normpath(system), eacces_ok=False)
        if "GIT_CONFIG_GLOBAL" in env:
            self.read_file(env["GIT_CONFIG_GLOBAL"])
        else:
            home, xdg = env.get("HOME"), env.get("XDG_CONFIG_HOME")
            if xdg:
                self.read_file(xdg + "/git/config")
            elif home is not None:
                self.read_file(home + "/.config/git/config")
            if home is not None:
                self.read_file(home + "/.gitconfig")
        if self.common_dir is not None:
            local = os.path.join(self.common_dir, "config")
            self.read_file(local, eacces_ok=False)
            if self._worktree_config(local):
                self.read_file(os.path.join(self.git_dir or self.common_dir, "config.worktree"), eacces_ok=False)
        for key, value in parse_parameters():
            self.add(key, value, None)

    def _parse(self, path: str, eacces_ok: bool) -> list | None:
        if path in self.parsed:
            return self.parsed[path]
        entries = None
        try:
            with open(path, "rb") as f:
                data = f.read()
            entries = parse_config(data.decode("utf-8", "surrogateescape"), f"file {path}")
        except (FileNotFoundError, NotADirectoryError):
            pass
        except IsADirectoryError as exc:  # git: "unable to access ...: Is a directory", then it dies
            raise ConfigError(f"git config file {path} is a directory; remove it or the include naming it") from exc
        except PermissionError as exc:
            if not eacces_ok:
                raise ConfigError(f"cannot read git config {path}: {exc.strerror}; fix its permissions") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read git config {path}: {exc.strerror}") from exc
        self.parsed[path] = entries
        return entries

    def read_file(self, path: str, *, eacces_ok: bool = True) -> bool:
        """Read one file (and what it includes); False when there is none. A file that
        exists but cannot be read is an error unless ``eacces_ok`` (git's global files)."""
        if not path:
            return False
        self.files.append(path)
        entries = self._parse(path, eacces_ok)
        if entries is None:
            return False
        for key, value in entries:
            self.add(key, value, path)
        return True

    def _worktree_config(self, local: str) -> bool:
        """``extensions.worktreeConfig`` as git's repository-format check reads it: from
        the repository's own config file, includes not followed."""
        entries = self.parsed.get(local) or []
        values = [value for key, value in entries if key == "extensions.worktreeconfig"]
        return bool(values) and parse_bool("extensions.worktreeconfig", values[-1])

    # -- entries and includes -----------------------------------------------------
    def add(self, key: str, value: str | None, path: str | None) -> None:
        if self.forbid_remote_url:
            if _is_remote_url(key):
                raise ConfigError(f"{key} is set in {path}, a file included by includeIf; git forbids remote "
                                  "URLs there while it evaluates includeIf.hasconfig:remote.*.url")
        else:
            self.values.setdefault(key, []).append(value)
        if key == "include.path":
            self._include(value, path, key)
        elif key.startswith("includeif."):
            dot = key.rfind(".")
            if dot > 9 and self._condition(key[10:dot], path) and key[dot + 1:] == "path":
                forbid = self.forbid_remote_url
                self.forbid_remote_url = forbid or self.unconditional_remote_url
                try:
                    self._include(value, path, key)
                finally:
                    self.forbid_remote_url = forbid

    def _include(self, value: str | None, path: str | None, key: str) -> None:
        where = path or "the command line"
        if value is None:
            raise ConfigError(f"{key} has no value in {where}; give it a file name")
        target = _expand(value, real_home=False)
        if target is None:
            raise ConfigError(f"cannot expand the include path {value!r} in {where}: HOME or the user is unknown")
        if not target.startswith("/"):
            if path is None:
                raise ConfigError(f"{key}={value} on the command line is relative; give an absolute path")
            target = path[:path.rfind("/") + 1] + target
        if self.depth >= MAX_INCLUDE_DEPTH and os.access(target, os.R_OK):
            raise ConfigError(f"more than {MAX_INCLUDE_DEPTH} nested config includes reaching {target} from "
                              f"{path or 'the command line'}; are the includes circular?")
        self.depth += 1
        try:
            self.read_file(target, eacces_ok=False)
        finally:
            self.depth -= 1

    # -- includeIf conditions -----------------------------------------------------
    def _condition(self, condition: str, path: str | None) -> bool:
        if condition.startswith("gitdir:"):
            return self._gitdir(condition[7:], path, icase=False)
        if condition.startswith("gitdir/i:"):
            return self._gitdir(condition[9:], path, icase=True)
        if condition.startswith("onbranch:"):
            return self._onbranch(condition[9:])
        if condition.startswith("hasconfig:remote.*.url:"):
            if self.unconditional_remote_url:
                return True
            glob = condition[len("hasconfig:remote.*.url:"):]
            from .wildmatch import wildmatch

            return any(wildmatch(glob, url) for url in self._remote_urls())
        return False  # unknown conditions are false, as in git

    def _gitdir(self, pattern: str, path: str | None, icase: bool) -> bool:
        if self.git_dir is None:
            return False
        pattern = _expand(pattern, real_home=True) or pattern
        prefix = 0
        if pattern.startswith("./"):
            if path is None:
                return False  # git: "relative config include conditionals must come from files"
            base = os.path.dirname(os.path.realpath(path))
            pattern = base + pattern[1:]
            prefix = len(base) + 1
        elif not pattern.startswith("/"):
            pattern = "**/" + pattern
        if pattern.endswith("/"):
            pattern += "**"
        texts = [os.path.realpath(self.git_dir), os.path.join(os.getcwd(), self.git_dir)]
        for text in texts:
            if prefix:
                head, want = text[:prefix], pattern[:prefix]
                if len(text) < prefix or (head.lower() != want.lower() if icase else head != want):
                    return False  # git compares the prefix once, not again for the absolute path
            from .wildmatch import wildmatch

            if wildmatch(pattern[prefix:], text[prefix:], casefold=icase):
                return True
        return False

    def _onbranch(self, pattern: str) -> bool:
        if self.branch == "":
            self.branch = self._head_branch()
        if self.branch is None:
            return False
        from .wildmatch import wildmatch

        return wildmatch(pattern + "**" if pattern.endswith("/") else pattern, self.branch)

    def _head_branch(self) -> str | None:
        """The branch HEAD names (born or not), None when detached or not a repository."""
        if self.git_dir is None:
            return None
        head = os.path.join(self.git_dir, "HEAD")
        self.files.append(head)
        ref, path = "HEAD", head
        for _ in range(6):  # a symref may name another symref
            try:
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except OSError:
                break
            if not text.startswith("ref:"):
                break
            ref = text[4:].strip()
            path = os.path.join(self.common_dir or self.git_dir, ref)
        else:
            return None
        return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None

    def _remote_urls(self) -> list[str]:
        """Every ``remote.<name>.url`` of the whole config, as git collects them for
        ``hasconfig``: a pass in which files included by ``includeIf`` may not set one."""
        if self.remote_urls is None:
            urls = _Reader(self.git_dir, self.common_dir, unconditional_remote_url=True, parsed=self.parsed)
            urls.read_all()
            self.remote_urls = [v for key, vals in urls.values.items() if _is_remote_url(key) for v in vals if v]
        return self.remote_urls


class GitConfig:
    """Merged view of the config git would read for one repository: every value of a
    key in git's order (``get_all``), the last one winning (``get``)."""

    def __init__(self, values: dict[str, list[str | None]], files: Iterable[str] = ()) -> None:
        self._values = values
        #: The files the values depend on, in the order read: config files (found or
        #: not), included files (found or not), and HEAD when ``onbranch:`` was evaluated.
        self.files: tuple[str, ...] = tuple(files)

    @classmethod
    def for_repository(cls, common_dir: str | None, git_dir: str | None = None) -> GitConfig:
        """The config of the repository whose common dir is ``common_dir`` and whose
        (worktree's) git dir is ``git_dir`` (default: the common dir); None for both
        reads only the system, global and command-line config."""
        reader = _Reader(git_dir or common_dir, common_dir)
        reader.read_all()
        return cls(reader.values, reader.files)

    @classmethod
    def from_git(cls, git_dir: str | None) -> GitConfig:
        """The same view, read by ``git config --list`` itself in ``git_dir`` (None: the
        repository git finds from the working directory), a subprocess: not for hot
        paths; the tests' oracle."""
        from . import gitbin

        proc = gitbin.run(["config", "--list", "-z"], git_dir=git_dir, error=ConfigError)
        if proc.returncode != 0:
            raise ConfigError(f"git config --list failed: {gitbin.failure(proc)}")
        values: dict[str, list[str | None]] = {}
        for record in proc.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]:
            key, newline, value = record.partition("\n")
            values.setdefault(key, []).append(value if newline else None)
        return cls(values)

    @staticmethod
    def _normal(key: str) -> str:
        section, _, name = key.rpartition(".")
        head, dot, sub = section.partition(".")
        return f"{head.lower()}.{sub}.{name.lower()}" if dot else f"{section.lower()}.{name.lower()}"

    def get_all(self, key: str) -> list[str | None]:
        """Every value of ``section[.sub].key`` in git's order (None for a bare key)."""
        return list(self._values.get(self._normal(key), ()))

    def get(self, key: str, default: str | None = None) -> str | None:
        """The last value of ``section[.sub].key`` (section and key case-insensitive,
        the subsection not); a bare key (no ``=``) reads "true"."""
        vals = self._values.get(self._normal(key))
        if not vals:
            return default
        value = vals[-1]
        return "true" if value is None else value

    def get_bool(self, key: str, default: bool = False) -> bool:
        """The last value of ``key`` as a boolean, as git reads it (``parse_bool``)."""
        vals = self._values.get(self._normal(key))
        return parse_bool(canonical_key(key) or key, vals[-1]) if vals else default

    def get_int(self, key: str, default: int) -> int:
        """The last value of ``key`` as an integer, as git reads it (``k``/``m``/``g``
        units too); a value git rejects raises ``ConfigError`` naming the key."""
        value = self.get(key)
        if value is None:
            return default
        number = _git_int(value)
        if number is None:
            raise ConfigError(f"git config {key} = {value!r} is not a number; set it to an integer")
        return number

    def items(self) -> list[tuple[str, list[str | None]]]:
        """``(canonical key, every value)`` for each key, keys in order of first appearance."""
        return [(key, list(vals)) for key, vals in self._values.items()]

    def remote_names(self) -> list[str]:
        """Names of the remotes that have a URL (``remote.<name>.url``), in config order."""
        names = [key[len("remote."):-len(".url")] for key in self._values if _is_remote_url(key)]
        return list(dict.fromkeys(names))


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
