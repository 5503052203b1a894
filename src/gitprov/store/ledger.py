"""``refs/prov/ledger``: a commit chain whose tree holds every run, sharded.

Each ledger commit is one write transaction. The tree layout (see
``docs/design/data-model.md``)::

    format                       {"format_version": 1, "kind": "ledger"}
    runs/<id[:2]>/<id>/record    immutable run header
    runs/<id[:2]>/<id>/state     mutable scalars
    runs/<id[:2]>/<id>/...       series chunks, artifacts, lineage
"""

from __future__ import annotations

from collections.abc import Iterator

from .._version import FORMAT_VERSION
from .objects import TreeEntry
from .repo import GitRepository
from .transaction import RefUpdate, commit_on_ref
from .trees import edit_tree, read_path, read_tree

__all__ = ["LEDGER_FORMAT", "LEDGER_REF", "Ledger", "run_dir"]

LEDGER_REF = "refs/prov/ledger"
#: the ``format`` blob at the ledger root: canonical JSON (what ``codec.encode`` gives)
LEDGER_FORMAT = b'{"format_version":%d,"kind":"ledger"}' % FORMAT_VERSION


def run_dir(run_id: str) -> str:
    """The directory of a run inside the ledger tree (two-character fan-out)."""
    return f"runs/{run_id[:2]}/{run_id}"


class Ledger:
    """Read and transact on the ledger of one repository."""

    def __init__(self, repo: GitRepository, ref: str = LEDGER_REF) -> None:
        self.repo = repo
        self.ref = ref

    def tip(self) -> str | None:
        return self.repo.refs.read(self.ref)

    def tree(self, tip: str | None = None) -> str | None:
        tip = tip if tip is not None else self.tip()
        return self.repo.read_commit(tip).tree if tip else None

    def read_file(self, path: str, tip: str | None = None) -> bytes | None:
        entry = read_path(self.repo.odb, self.tree(tip), path)
        if entry is None or entry.is_tree:
            return None
        return self.repo.odb.read_typed(entry.oid, "blob")

    def list_dir(self, path: str, tip: str | None = None) -> dict[str, TreeEntry]:
        root = self.tree(tip)
        if not path:
            return read_tree(self.repo.odb, root)
        entry = read_path(self.repo.odb, root, path)
        if entry is None or not entry.is_tree:
            return {}
        return read_tree(self.repo.odb, entry.oid)

    def run_ids(self, tip: str | None = None) -> Iterator[str]:
        for shard in self.list_dir("runs", tip).values():
            if shard.is_tree:
                yield from sorted(read_tree(self.repo.odb, shard.oid))

    def apply(self, changes: dict[str, bytes | str | None], message: str,
              format_blob: bytes = LEDGER_FORMAT) -> str | None:
        """Write ``{path: bytes | blob id | None}`` as one transaction; retries lost races."""
        return commit_on_ref(self.repo, *self.update(changes, message, format_blob))

    def update(self, changes: dict[str, bytes | str | None], message: str,
               format_blob: bytes = LEDGER_FORMAT) -> RefUpdate:
        """The same change as a ``RefUpdate``, for ``commit_on_refs`` with other refs."""
        changes = dict(changes)
        changes.setdefault("format", format_blob)
        return self.ref, lambda tree: edit_tree(self.repo.odb, tree, changes), message
