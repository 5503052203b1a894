"""Managed cache paths of pipeline stages (curifactory's ``record.get_path`` /
``record.get_dir``): files a stage writes under a directory named by its cache key,
``.git/prov/stage-cache/<cache key hex>/``. The same key (same stage, arguments,
inputs and, when covered, code and data) gives the same directory, so a hit that
``find_cached`` returns names the files the earlier run left there."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..keys import check_key

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["CACHE_FOLDER", "cache_dir", "cache_path"]

CACHE_FOLDER = "stage-cache"


def cache_dir(store: ProvStore, key: str) -> str:
    """The directory of cache key ``key`` (not created)."""
    prov_dir = store.git.prov_dir()
    if prov_dir is None:
        raise UsageError("managed cache paths need an on-disk repository")
    return os.path.join(prov_dir, CACHE_FOLDER, key.removeprefix("sha256:"))


def cache_path(store: ProvStore, key: str, name: str) -> str:
    """The path of ``name`` (one file or directory name) in the directory of ``key``."""
    check_key(name, "cache path name")
    if "/" in name or "\\" in name:
        raise UsageError(f"cache path name {name!r} must be one name, without '/'")
    return os.path.join(cache_dir(store, key), name)
