"""``PackDirectory``: the ``objects/pack`` directory as one process sees it, against
packs that prov and the real ``git`` write. Reads while git's repack replaces packs:
``test_packs.py``; the repack cue: ``test_maintenance.py``."""

from __future__ import annotations

import os

import pytest

from gitprov.store.pack_directory import PackDirectory
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo
from tests.store.test_packs import write_some

pytestmark = pytest.mark.gitbin


def packed(repo: GitRepo, tag: str, n: int = 3) -> tuple[GitRepository, list[tuple[str, str, bytes]]]:
    git = GitRepository.open(str(repo.path))
    with git.odb.batch():
        written = write_some(git, tag, n)
    return git, written


def git_packs(repo: GitRepo, text: str) -> str:
    """A blob in a pack the real git writes (another process's pack); its id."""
    blob = repo.git("hash-object", "-w", "--stdin", input=text)
    repo.git("pack-objects", "-q", str(repo.path / ".git" / "objects" / "pack" / "pack"), input=blob)
    return blob.strip()


def test_a_pack_listed_once_is_reused_by_later_listings(repo: GitRepo) -> None:
    git, _ = packed(repo, "first")
    directory = git.odb.pack_directory
    first = list(directory.rescan())
    git_packs(repo, "another process's pack\n")
    second = directory.rescan()
    assert len(second) == len(first) + 1
    assert all(any(p is q for q in second) for p in first), "an index read before is read again"


def test_a_pack_this_process_wrote_is_known_without_listing_the_directory(repo: GitRepo, monkeypatch) -> None:
    git, _ = packed(repo, "known")
    directory = git.odb.pack_directory
    directory.rescan()
    listings = []
    real = directory.listing
    monkeypatch.setattr(directory, "listing", lambda **kw: listings.append(1) or real(**kw))
    with git.odb.batch():
        written = write_some(git, "mine")
    assert listings == []
    assert all(git.odb.read(oid) == (kind, data) for oid, kind, data in written)
    assert listings == [], "every object was found in the packs already known"


def test_positions_order_objects_as_they_lie_in_the_packs(repo: GitRepo) -> None:
    git, written = packed(repo, "order", 6)
    raw = [bytes.fromhex(oid) for oid, _, _ in written]
    packs, where = git.odb.pack_directory.positions(raw)
    assert len(packs) == 1 and all(at >= 0 for at in where)
    offsets = {oid: packs[0].offset_of(oid) for oid, _, _ in written}
    assert [offsets[oid] for oid, _, _ in sorted(written, key=lambda w: where[written.index(w)])] == sorted(offsets.values())
    missing = bytes(len(raw[0]))
    assert list(git.odb.pack_directory.positions([missing])[1]) == [-1]


def test_ids_and_prefixes_cover_every_pack_git_and_prov_wrote(repo: GitRepo) -> None:
    git, mine = packed(repo, "prov")
    blob = git_packs(repo, "git's own\n")
    directory = PackDirectory(os.path.join(str(repo.path), ".git", "objects", "pack"), git.fmt)
    ids = directory.ids()
    assert {oid for oid, _, _ in mine} | {blob} <= ids
    assert blob in directory.ids_with_prefix(blob[:6])
    assert all(oid.startswith(blob[:6]) for oid in directory.ids_with_prefix(blob[:6]))


def test_a_missing_directory_lists_no_packs(tmp_path) -> None:
    from gitprov.store.objects import SHA1

    directory = PackDirectory(str(tmp_path / "objects" / "pack"), SHA1)
    assert directory.rescan() == [] and directory.find("0" * 40) is None and directory.ids() == set()
