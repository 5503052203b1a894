"""``core.fsync``, ``core.fsyncMethod`` and ``core.fsyncObjectFiles``: which files prov
flushes, counted by wrapping ``os.fsync`` under each setting, and git's parsing of the
setting checked against git itself (its ``fsync`` calls counted with ``strace``)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from gitprov.store.durability import (
    COMMIT_GRAPH,
    DEFAULT_COMPONENTS,
    INDEX,
    LOOSE_OBJECT,
    PACK,
    PACK_METADATA,
    REFERENCE,
    Durability,
    parse_fsync_components,
)
from gitprov.store.objects import MODE_BLOB, TreeEntry, encode_tree
from gitprov.store.repo import GitRepository
from gitprov.store.transaction import commit_on_ref
from tests.conftest import GitRepo

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names synced files through /proc")

ALL = LOOSE_OBJECT | PACK | PACK_METADATA | COMMIT_GRAPH | INDEX | REFERENCE


@pytest.mark.parametrize(("value", "expected"), [
    ("", DEFAULT_COMPONENTS),
    ("none", 0),
    ("  none", 0),
    ("all", ALL),
    ("loose-object", DEFAULT_COMPONENTS | LOOSE_OBJECT),
    ("objects", DEFAULT_COMPONENTS | LOOSE_OBJECT),
    ("committed", DEFAULT_COMPONENTS | LOOSE_OBJECT | REFERENCE),
    ("added", DEFAULT_COMPONENTS | LOOSE_OBJECT | REFERENCE | INDEX),
    ("derived-metadata", DEFAULT_COMPONENTS),
    ("-reference", DEFAULT_COMPONENTS),
    ("-pack", COMMIT_GRAPH),  # a word names every component it begins: pack and pack-metadata
    ("ref", DEFAULT_COMPONENTS | REFERENCE),
    ("all,-pack-metadata", ALL),  # a component both added and removed stays
    ("none,reference", DEFAULT_COMPONENTS | REFERENCE),  # "none" only as the whole rest; else unknown
    ("reference,none", REFERENCE),
    ("-,reference", DEFAULT_COMPONENTS),  # an empty word ends the list
    (" reference ,\tloose-object", DEFAULT_COMPONENTS | LOOSE_OBJECT),  # "reference " is unknown
    ("bogus,index", DEFAULT_COMPONENTS | INDEX),
])
def test_core_fsync_is_parsed_as_git_parses_it(value: str, expected: int) -> None:
    assert parse_fsync_components(value) == expected


def test_gits_default_flushes_packs_but_not_loose_objects_nor_refs() -> None:
    assert DEFAULT_COMPONENTS == PACK | PACK_METADATA | COMMIT_GRAPH


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.parametrize("value", ["", "none", "reference", "ref", "all", "all,-ref", "committed,-reference",
                                   "-reference", "objects", "loose", "pack,none", "none,pack", "-,reference",
                                   "added", " reference ,loose-object", "-loose-object,committed"])
def test_the_components_are_the_ones_git_flushes(repo: GitRepo, tmp_path, value: str) -> None:
    """Oracle: git's own fsync calls for a ref update and a loose object under ``value``."""
    trace = tmp_path / "trace"

    def fsyncs(*args: str, stdin: bytes | None = None) -> int:
        subprocess.run(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(trace),
                        "git", "-c", f"core.fsync={value}", *args],
                       cwd=repo.path, input=stdin, capture_output=True, check=True)
        return sum("fsync(" in line for line in trace.read_text().splitlines())

    ours = Durability(parse_fsync_components(value))
    assert fsyncs("update-ref", "refs/test/x", "HEAD") == int(ours.wants(REFERENCE))
    assert fsyncs("hash-object", "-w", "--stdin", stdin=value.encode() + b"\n") == int(ours.wants(LOOSE_OBJECT))


# -- which files a write flushes -------------------------------------------------------


def _synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each ``os.fsync`` call from now on flushes, by kind (a ref by name)."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        base = os.path.basename(path)
        if base.startswith("tmp_obj_"):
            seen.append("loose object")
        elif base.startswith("tmp_pack_prov_"):
            seen.append("pack")
        elif base.startswith("tmp_idx_prov_"):
            seen.append("pack index")
        elif base.endswith(".lock"):
            seen.append(path[path.index("/.git/") + 6 : -5])
        else:
            seen.append(path)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def _open(repo: GitRepo, **config: str) -> GitRepository:
    for key, value in config.items():
        repo.git("config", key, value)
    return GitRepository.open(str(repo.path))


def _objects_and_a_ref_update(git: GitRepository) -> None:
    """A loose object, then a transaction: its objects (one pack) and a ref update."""
    git.odb.write("blob", b"a loose object\n")
    odb = git.odb
    commit_on_ref(git, "refs/prov/x",
                  lambda _tree, _tip: odb.write("tree", encode_tree([TreeEntry(MODE_BLOB, "f", odb.write("blob", b"packed"))])),
                  "prov: x")


EVERYTHING = ["loose object", "pack", "pack index", "refs/prov/x"]
OBJECTS = ["loose object", "pack", "pack index"]


@pytest.mark.parametrize(("config", "synced"), [
    ({}, []),  # git's default: a commit's objects and refs are not flushed
    ({"core.fsync": "none"}, []),
    ({"core.fsync": "all"}, EVERYTHING),
    ({"core.fsync": "-reference"}, []),
    ({"core.fsync": "objects"}, OBJECTS),
    ({"core.fsync": "loose-object"}, OBJECTS),
    ({"core.fsync": "committed"}, EVERYTHING),
    ({"core.fsync": "committed,-reference"}, EVERYTHING),  # as git: added and removed stays
    ({"core.fsync": "all,-loose-object"}, EVERYTHING),
    ({"core.fsync": "none,loose-object"}, OBJECTS),  # "none,..." is an unknown word: default + loose
    ({"core.fsync": "reference"}, ["refs/prov/x"]),
    ({"core.fsync": "pack"}, []),  # a transaction's pack is flushed as loose objects are
    ({"core.fsyncObjectFiles": "true"}, OBJECTS),
    ({"core.fsyncObjectFiles": "true", "core.fsync": "none"}, OBJECTS),  # the legacy setting adds
    ({"core.fsyncObjectFiles": "false", "core.fsync": "all"}, EVERYTHING),  # ... and never removes
    ({"core.fsync": "all", "core.fsyncMethod": "batch"}, EVERYTHING),
    ({"core.fsync": "all", "core.fsyncMethod": "writeout-only"}, EVERYTHING),
], ids=lambda v: ",".join(f"{k.split('.')[1]}={x}" for k, x in v.items()) if isinstance(v, dict) else None)
def test_each_setting_flushes_exactly_these_files(repo: GitRepo, monkeypatch: pytest.MonkeyPatch,
                                                  config: dict[str, str], synced: list[str]) -> None:
    git = _open(repo, **config)
    seen = _synced(monkeypatch)
    _objects_and_a_ref_update(git)
    assert seen == synced
    assert git.refs.reflog("refs/prov/x"), "the reflog was written (git never flushes one)"


def test_git_test_fsync_turns_every_flush_off(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_TEST_FSYNC", "0")
    git = _open(repo, **{"core.fsync": "all"})
    seen = _synced(monkeypatch)
    _objects_and_a_ref_update(git)
    assert seen == []


def test_the_method_is_read_unknown_ones_are_fsync(repo: GitRepo) -> None:
    assert _open(repo).odb.durability.method == "fsync"
    assert _open(repo, **{"core.fsyncMethod": "batch"}).refs.durability.method == "batch"
    assert _open(repo, **{"core.fsyncMethod": "sometimes"}).odb.durability.method == "fsync"


def test_rewriting_packed_refs_is_flushed_as_a_reference(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    head = repo.git("rev-parse", "HEAD").strip()
    repo.git("update-ref", "refs/prov/packed", head)
    repo.git("pack-refs", "--all")
    git = _open(repo, **{"core.fsync": "reference"})
    seen = _synced(monkeypatch)
    assert git.refs.delete("refs/prov/packed", head)
    assert seen == ["packed-refs"]
