"""Many objects through one ``git cat-file`` process (git's pack reader and delta cache,
in C): ``--batch`` for contents, ``--batch-check`` for type and size only.

Requests are object names, one a line; answers come in the same order, each a header
``<oid> <type> <size>`` (followed, for ``--batch``, by the content and a newline) or
``<oid> missing``. The caller reads answers while another thread writes requests, so
neither side waits on a full pipe.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import DataError, ProvError
from . import gitbin
from .repo import GitRepository

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from typing import BinaryIO

__all__ = ["BOUNDED", "Header", "parse_header", "read_header", "start"]

#: git maps a pack into memory a window at a time and keeps the windows it used (8 GiB
#: of them by default): reading every object maps the whole pack, which counts in git's
#: resident memory. Small windows, few kept, hold that to git's delta-base cache.
BOUNDED = ("-c", "core.packedGitWindowSize=1m", "-c", "core.packedGitLimit=16m")


class Header(NamedTuple):
    """One answer's header: ``type`` is None when git reports the object missing."""

    oid: str
    type: str | None
    size: int


def start(repo: GitRepository, *, check: bool = False, buffered: bool = True,
          config: tuple[str, ...] = ()) -> subprocess.Popen[bytes] | None:
    """A ``git cat-file --batch`` (``--batch-check`` when ``check``) process on ``repo``,
    or None when there is no git directory (in-memory repository) or no git binary.
    ``buffered``: git holds its answers until its output buffer fills or its input ends;
    otherwise each answer is flushed as it is made. ``config``: more ``-c`` options."""
    git_dir = repo.common_dir or repo.git_dir
    if git_dir is None:
        return None
    try:
        return gitbin.start([*BOUNDED, *config, "cat-file", "--batch-check" if check else "--batch",
                             *(["--buffer"] if buffered else [])], git_dir=git_dir, bufsize=1 << 16,
                            drop=("GIT_OBJECT_DIRECTORY", "GIT_WORK_TREE"),
                            # a partial clone: report missing, never fetch
                            extra={"GIT_NO_LAZY_FETCH": "1"})
    except ProvError:  # git cannot be started
        return None


def read_header(stdout: BinaryIO) -> Header | None:
    """The next answer's header; None at the end of git's output (all answered, or git
    stopped: it could not read the repository, or died)."""
    return parse_header(stdout.readline())


def parse_header(line: bytes) -> Header | None:
    """An answer's header from its line (None: not a whole line, git's output ended)."""
    if not line.endswith(b"\n"):
        return None
    parts = line.split()
    if len(parts) == 2 and parts[1] in (b"missing", b"ambiguous"):
        return Header(parts[0].decode("ascii", "replace"), None, 0)
    if len(parts) != 3 or not parts[2].isdigit():
        raise DataError(f"unexpected answer from git cat-file: {line[:80]!r}")
    return Header(parts[0].decode("ascii"), parts[1].decode("ascii"), int(parts[2]))
