"""Files inside the repository only: no write or read follows a symlink out of it
(docs/design/security.md). Cloned content can plant symlinks; the user's own tree is
not assumed to be free of them."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["is_inside", "replace_file", "replacing_file"]


def is_inside(path: str, root: str) -> bool:
    """Does ``path``, with every symlink resolved, lie in ``root`` (resolved too)?"""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def replace_file(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` whole through a new file renamed over it: a symlink standing at
    ``path`` is replaced, never written through, and readers see the old or the new
    content, nothing between. Raises ``OSError``."""
    with replacing_file(path, mode) as f:
        f.write(data)


@contextlib.contextmanager
def replacing_file(path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """``replace_file`` written a part at a time: a new file to write, renamed over
    ``path`` when the block ends, removed if it raises. Raises ``OSError``."""
    tmp = f"{path}.prov-{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
