"""The ledger at one commit of the log, as ``store.ledger.Ledger`` asks about it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ...errors import DataError
from ..objects import MODE_BLOB, TreeEntry
from ..repo import GitRepository
from .fold_cache import FoldCache
from .history import fold_since
from .names import file_of, is_run_blob, link_of, run_blob_parts

__all__ = ["LogView"]


class LogView:
    """The ledger at one commit of a log, answering what ``store.ledger.Ledger`` answers
    about one run and one commit from format 3's tree. With a ``FoldCache``, brought to
    ``tip`` and asked run by run; without, folded once, when first asked."""

    def __init__(self, repo: GitRepository, tip: str | None,
                 cache: FoldCache | Callable[[], FoldCache] | None = None) -> None:
        self.repo, self.tip = repo, tip
        self._cache = cache  # opened (a callable) and brought to ``tip`` when first asked
        self._current = False
        self._runs: dict[str, dict[str, str]] | None = None
        self._links: dict[str, set[str]] = {}

    @property
    def cache(self) -> FoldCache | None:
        if callable(self._cache):
            self._cache = self._cache()
            self._cache.update(self.tip)  # once: the view is of one tip
        elif self._cache is not None and not self._current:
            self._cache.update(self.tip)
        self._current = True
        return self._cache

    def _fold(self) -> dict[str, dict[str, str]]:
        if self._runs is None:
            runs: dict[str, dict[str, str]] = {}
            for name, oid in (fold_since(self.repo, self.tip, None) if self.tip else {}).items():
                if (where := file_of(name)) is not None:
                    runs.setdefault(where[0], {})[where[1]] = oid
                if (link := link_of(name)) is not None:
                    self._links.setdefault(link[1], set()).add(link[0])
            self._runs = runs
        return self._runs

    def files(self, run_id: str) -> dict[str, str]:
        """``{the file as format 3 names it: blob id}`` of one run ("": the run blob)."""
        if self.cache is None:
            return self._fold().get(run_id, {})
        return {where[1]: oid for name, oid in self.cache.entries_of(run_id).items()
                if (where := file_of(name)) is not None}

    def has_run(self, run_id: str) -> bool:
        """Whether the ledger holds a run blob of ``run_id`` (nothing read)."""
        cache = self.cache
        return cache.run_blob_of(run_id) is not None if cache is not None else "" in self.files(run_id)

    def run_ids(self, at_most: int) -> set[str] | None:
        """The ids of the ledger's runs when it holds at most ``at_most`` entries, else
        None (``has_run`` run by run is then cheaper): a first pull of 100,000 runs asks
        about each, and a fresh clone holds few."""
        cache = self.cache
        if cache is None:
            return {run_id for run_id, files in self._fold().items() if "" in files}
        if cache.count(at_most + 1) > at_most:
            return None
        return {run_id for run_id, _ in cache.run_blobs()}

    def run_parts(self, run_id: str) -> tuple[bytes, bytes] | None:
        """``(record, state)`` of a run, None when the ledger has no such run."""
        parts = self.run_blob(run_id)
        return None if parts is None else parts[:2]  # type: ignore[return-value]

    def run_blob(self, run_id: str) -> tuple[bytes, bytes, dict[str, bytes]] | None:
        """``(record, state, artifacts kept in it)`` of a run, None when there is none."""
        cache = self.cache
        oid = cache.run_blob_of(run_id) if cache is not None else self.files(run_id).get("")
        if oid is None:
            return None
        try:
            return run_blob_parts(self.repo.odb.read_typed(oid, "blob"), run_id, self.repo.fmt.hash_object)
        except ValueError as exc:
            raise DataError(f"{exc}; run 'prov verify'") from None

    def run_file(self, run_id: str, name: str) -> bytes | None:
        if name in ("record", "state") or name.startswith("artifacts/"):
            parts = self.run_blob(run_id)
            if parts is None:
                return None
            if name in ("record", "state"):
                return parts[0] if name == "record" else parts[1]
            if (inline := parts[2].get(name[len("artifacts/"):])) is not None:
                return inline
        oid = self.files(run_id).get(name)
        return None if oid is None else self.repo.odb.read_typed(oid, "blob")

    def run_folder(self, run_id: str, name: str) -> dict[str, TreeEntry]:
        """A folder's entries; an artifact kept in the run blob is listed with the id git
        gives its content (no object of its own: read it with ``run_file``)."""
        prefix = name.rstrip("/") + "/"
        out = {path[len(prefix):]: TreeEntry(MODE_BLOB, path[len(prefix):], oid)
               for path, oid in self.files(run_id).items()
               if path.startswith(prefix) and "/" not in path[len(prefix):]}
        if prefix == "artifacts/" and (parts := self.run_blob(run_id)) is not None:
            for key, content in parts[2].items():
                out[key] = TreeEntry(MODE_BLOB, key, self.repo.fmt.hash_object("blob", content))
        return out

    def run_version(self, run_id: str) -> str | None:
        files = self.files(run_id)
        if "" not in files:
            return None
        listing = "".join(f"{path}\0{oid}\n" for path, oid in sorted(files.items())).encode()
        return self.repo.fmt.hash_object("blob", listing)

    def run_ids_with_prefix(self, prefix: str) -> list[str]:
        if self.cache is not None:
            return sorted({run for name in self.cache.names_with_prefix(prefix) if (run := is_run_blob(name))})
        return sorted(run_id for run_id, files in self._fold().items() if run_id.startswith(prefix) and "" in files)

    def run_ids_at(self, commit: str) -> list[str]:
        """The ids of the runs made at ``commit``, sorted."""
        if self.cache is not None:
            return self.cache.runs_at(commit)
        self._fold()
        return sorted(self._links.get(commit, ()))

    def stray_names(self) -> list[tuple[str, str]]:
        """``(entry, why)`` of the entries of the ledger that are no run's blob nor file,
        or the files of a run the ledger has no blob of."""
        cache = self.cache
        names = [name for (name,) in cache.db.execute("SELECT name FROM entries")] if cache is not None \
            else list(fold_since(self.repo, self.tip, None) if self.tip else {})
        runs = {run for name in names if (run := is_run_blob(name))}
        out = []
        for name in names:
            where = file_of(name)
            if where is None:
                out.append((name, "is not a file of a run"))
            elif where[0] not in runs:
                out.append((name, f"is a file of run {where[0][:12]}, which the ledger has no record of"))
        return out

    def commits_with_runs(self) -> list[str]:
        """The commits runs were made at, sorted."""
        if self.cache is not None:
            return self.cache.commits()
        self._fold()
        return sorted(self._links)

    def run_blobs(self) -> Iterator[tuple[str, str]]:
        """``(run id, run blob id)`` of every run, in id order."""
        if self.cache is not None:
            yield from self.cache.run_blobs()
            return
        yield from sorted((run_id, files[""]) for run_id, files in self._fold().items() if "" in files)
