"""The benchmarks' synthetic ledger is what git-prov itself writes: git, ``prov verify``,
``Repository.runs`` and the index accept it, in SHA-1 and SHA-256 repositories."""

from __future__ import annotations

import pytest
from synthetic_ledger import append_runs, build_ledger, init_repository, run_id_of  # noqa: E402

import gitprov
from tests.conftest import run_git, run_prov


@pytest.fixture
def built(repo):
    first = build_ledger(str(repo.path), 30, seed=7, series_fraction=0.2)
    more = append_runs(str(repo.path), 5, seed=7, series_fraction=0.2)
    return repo, first, more


def test_git_and_prov_verify_accept_the_synthetic_ledger(built):
    repo, first, more = built
    repo.fsck()
    assert run_git(repo.path, "log", "--format=%s", "refs/prov/ledger").splitlines() == [
        "prov: synthetic runs 30..34 (seed 7)", "prov: synthetic runs 0..29 (seed 7)"]
    report = gitprov.Repository(repo.path).verify()
    assert report.ok, report.problems
    assert report.runs == 35
    assert not [w for w in report.warnings if "dangling" in w]  # lineage to earlier runs resolves
    assert not [w for w in report.warnings if "not listed under" in w]  # each run under its commit
    assert len(gitprov.Repository(repo.path).show("HEAD").runs) == 35
    proc = run_prov(repo.path, "verify")
    assert proc.returncode == 0, proc.stderr


def test_runs_read_back_with_ids_of_their_record_bytes(built):
    repo, first, more = built
    prov = gitprov.Repository(repo.path)
    runs = prov.runs(include_deleted=True)
    assert sorted(r.id for r in runs) == sorted(first.run_ids + more.run_ids)
    assert more.start == 30 and more.count == 5
    fmt = prov.git.fmt
    for run in runs:
        data = prov.ledger.read_file(f"runs/{run.id[:2]}/{run.id}/record")
        assert fmt.hash_object("blob", data) == run.id
        assert run.record.code.commit == run_git(repo.path, "rev-parse", "HEAD").strip()
    with_series = [r for r in runs if r.get_metric_history("acc")]
    assert with_series, "series_fraction=0.2 gives some runs a chunk"
    for run in with_series:
        assert run.get_metric_history("acc")[-1].value == run.get_metric("acc")
    assert first.run_ids[3] == run_id_of(str(repo.path), 3, seed=7)


def test_the_index_answers_queries_and_lineage_over_it(built):
    repo, first, more = built
    prov = gitprov.Repository(repo.path)
    best = prov.find_runs("params.lr > 0.0001 and metrics.acc >= 0.5", order_by="metrics.acc desc", limit=3)
    assert len(best) == 3
    accs = [r.get_metric("acc") for r in best]
    assert accs == sorted(accs, reverse=True)
    graph = prov.lineage(more.run_ids[-1], "upstream")
    assert any(f"run:{run_id}" in graph.nodes for run_id in first.run_ids)  # across the two commits


def test_build_then_append_stores_the_same_runs_as_one_build(make_repo, object_format):
    a, b = make_repo(object_format, commits=0), make_repo(object_format, commits=0)
    build_ledger(str(a.path), 12, commit=None)
    append_runs(str(a.path), 4, commit=None)
    build_ledger(str(b.path), 16, commit=None)
    tree = "refs/prov/ledger^{tree}"
    assert run_git(a.path, "rev-parse", tree) == run_git(b.path, "rev-parse", tree)
    with pytest.raises(ValueError, match="append_runs"):
        build_ledger(str(b.path), 1)


def test_init_repository_is_reproducible(tmp_path, object_format):
    one = init_repository(str(tmp_path / "one"), object_format)
    two = init_repository(str(tmp_path / "two"), object_format)
    assert one == two and len(one) == (64 if object_format == "sha256" else 40)


def test_show_reads_many_runs_at_one_commit_in_bulk(make_repo):
    """More than BULK_MIN runs at a commit: prov show reads their records through git
    cat-file, and lists the same runs as the object layer would."""
    from gitprov.index.reading import BULK_MIN
    from gitprov.provenance import BULK_RUNS

    assert BULK_RUNS == BULK_MIN
    repo = make_repo()
    repo.commit("code")
    ids = build_ledger(str(repo.path), BULK_MIN + 20, seed=5).run_ids
    shown = gitprov.Repository(repo.path).show("HEAD").runs
    assert sorted(link.run for link in shown) == sorted(ids)
    assert [link.created for link in shown] == sorted(link.created for link in shown)
    assert all(link.name for link in shown)


@pytest.mark.format3  # a run removed from format 3's runs/ but still listed under its commit
def test_prov_show_prints_many_runs_as_it_reads_them_with_the_text_of_the_api(make_repo, monkeypatch):
    """``prov show`` (the fast path and click's) reads the runs of a big sweep lazily,
    sorted on disk, and prints exactly what rendering the whole ``Repository.show``
    prints, text and JSON; a run listed but missing from the ledger is named on stderr."""
    import io
    from contextlib import redirect_stdout

    from click.testing import CliRunner

    from gitprov.cli import render
    from gitprov.cli.app import cli
    from gitprov.index.reading import BULK_MIN
    from gitprov.provenance import ListedRuns
    from gitprov.store.ledger import run_dir

    repo = make_repo()
    repo.commit("code")
    ids = build_ledger(str(repo.path), BULK_MIN + 60, seed=9).run_ids
    prov = gitprov.Repository(repo.path)
    gone = sorted(ids)[BULK_MIN // 3]
    prov.ledger.apply({run_dir(gone): None}, "test: a run lost from runs/ but still listed")
    eager = prov.show("HEAD")
    assert len(eager.runs) == len(ids) - 1 and eager.problems and gone[:12] in eager.problems[0]
    lazy = prov.show("HEAD", lazy=True)
    assert isinstance(lazy.runs, ListedRuns) and list(lazy.runs) == eager.runs and lazy.schema == eager.schema
    lazy.runs.close()
    text = render.render_show(eager) + "\n"
    buf = io.StringIO()
    with redirect_stdout(buf):
        render.emit_json(eager)
    for args, expected in ((["show"], text), (["show", "--json"], buf.getvalue())):  # the fast path
        proc = run_prov(repo.path, *args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == expected
        assert f"{run_dir(gone)}: listed under its commit but not in the ledger" in proc.stderr
    monkeypatch.chdir(repo.path)
    result = CliRunner().invoke(cli, ["show", "HEAD", "--json"])  # click's path
    assert result.exit_code == 0 and result.stdout == buf.getvalue()
