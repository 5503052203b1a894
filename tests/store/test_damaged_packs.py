"""A truncated or damaged pack is a ``DataError`` naming it (exit 5, one line), never an
``IndexError`` from the memory map (issue 16)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import gitprov
from gitprov.errors import DataError
from gitprov.store.objects import SHA1
from gitprov.store.packfile import Pack

from ..conftest import GitRepo, run_prov


def _newest_pack(repo: GitRepo) -> Path:
    packs = sorted((repo.path / ".git" / "objects" / "pack").glob("*.pack"), key=os.path.getmtime)
    return packs[-1]


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_a_truncated_pack_is_one_line_naming_it(prov_repo: GitRepo, keep: float) -> None:
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="r", params={"lr": 0.1}, code=False, environment=False) as run:
        run.log_metric("loss", 0.5)
    pack = _newest_pack(prov_repo)
    data = pack.read_bytes()
    pack.write_bytes(data[: max(13, int(len(data) * keep))])
    for args in (("show",), ("verify",), ("runs", "--json")):
        proc = run_prov(prov_repo.path, *args)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        if args == ("verify",):
            assert proc.returncode == 8 and "is damaged" in proc.stdout, (proc.stdout, proc.stderr)
        else:
            assert proc.returncode in (0, 5), (args, proc.returncode, proc.stderr)
            if proc.returncode == 5:
                lines = proc.stderr.strip().splitlines()
                assert len(lines) == 1 and pack.name in lines[0] and "git fsck" in lines[0], lines


def test_an_empty_pack_and_a_short_index_are_data_errors(tmp_path: Path) -> None:
    idx = tmp_path / "pack-x.idx"
    idx.write_bytes(b"\xfftOc" + (2).to_bytes(4, "big") + b"\0" * 100)
    with pytest.raises(DataError, match="truncated"):
        Pack(str(idx), SHA1)
    idx.write_bytes(b"\xfftOc" + (2).to_bytes(4, "big") + b"\0" * 1024 + b"\0" * 40)
    (tmp_path / "pack-x.pack").write_bytes(b"")
    pack = Pack(str(idx), SHA1)
    with pytest.raises(DataError, match="empty"):
        pack.read_at(12, lambda oid: ("blob", b""))
