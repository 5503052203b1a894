"""Hashing declared data inputs, with a stat cache so unchanged files are not read again.

The cache (``.git/prov/stat-cache.json``) maps a path to its size, mtime, inode and
sha256; a file whose stat matches is not re-hashed. Losing the cache only costs time.
"""

from __future__ import annotations

import glob
import hashlib
import os

import msgspec

from ..errors import ConfigError
from ..model.capture import InputFile

__all__ = ["hash_inputs", "looks_like_a_path", "sha256_file"]

_CACHE_NAME = "stat-cache.json"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_cache(prov_dir: str | None) -> dict[str, list]:
    if prov_dir is None:
        return {}
    try:
        with open(os.path.join(prov_dir, _CACHE_NAME), "rb") as f:
            cache = msgspec.json.decode(f.read())
        return cache if isinstance(cache, dict) else {}
    except (OSError, msgspec.DecodeError):
        return {}


def _save_cache(prov_dir: str | None, cache: dict[str, list]) -> None:
    if prov_dir is None:
        return
    try:
        os.makedirs(prov_dir, exist_ok=True)
        tmp = os.path.join(prov_dir, f"{_CACHE_NAME}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(msgspec.json.encode(cache))
        os.replace(tmp, os.path.join(prov_dir, _CACHE_NAME))
    except OSError:
        pass  # a cache that cannot be saved only costs time next run


def hash_inputs(work_tree: str, patterns: list[str], prov_dir: str | None) -> list[InputFile]:
    """sha256 and size of every file matching ``patterns`` below ``work_tree``."""
    if not patterns:
        return []
    from .._util.paths import is_inside

    paths: set[str] = set()
    for pattern in patterns:
        for rel in glob.glob(pattern, root_dir=work_tree, recursive=True):
            full = os.path.join(work_tree, rel)
            # a symlink (of the file or of a directory on its way) may lead out of the work
            # tree, where a pattern must not reach: such a match is not an input
            if os.path.isfile(full) and is_inside(full, work_tree):
                paths.add(rel.replace(os.sep, "/"))
    cache = _load_cache(prov_dir)
    fresh: dict[str, list] = {}
    out = []
    for rel in sorted(paths):
        full = os.path.join(work_tree, rel)
        try:
            st = os.stat(full)
            stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
            hit = cache.get(rel)
            fresh_hit = isinstance(hit, list) and len(hit) == 4 and hit[:3] == stamp
            digest = hit[3] if fresh_hit else sha256_file(full)
        except OSError as exc:
            raise ConfigError(
                f"cannot read declared input {rel}: {exc.strerror}; fix its permissions or "
                "remove it from [inputs] in .provenance.toml"
            ) from exc
        fresh[rel] = [*stamp, digest]
        out.append(InputFile(path=rel, sha256=digest, size=st.st_size))
    if fresh != cache:
        _save_cache(prov_dir, fresh)
    return out


#: endings of data files: a string with one that names no file is a mistyped path
_DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".arrow", ".feather", ".avro", ".orc", ".txt",
                  ".npy", ".npz", ".pt", ".pth", ".pkl", ".pickle", ".h5", ".hdf5", ".tfrecord", ".zip", ".tar",
                  ".gz", ".bz2", ".xz", ".zst", ".xlsx", ".xls", ".db", ".sqlite", ".png", ".jpg", ".jpeg", ".wav",
                  ".mp3", ".safetensors", ".bin", ".yaml", ".yml", ".xml", ".html")


def looks_like_a_path(text: str) -> bool:
    """Is ``text``, which names nothing on disk, shaped as a path rather than a digest,
    a version or a URI (``sha256:…``, ``mnist:v3``, ``s3://b/k?versionId=…``)?"""
    if "://" in text or ":" in text.split("/", 1)[0]:
        return False
    return "/" in text or os.sep in text or text.startswith(".") or text.lower().endswith(_DATA_SUFFIXES)
