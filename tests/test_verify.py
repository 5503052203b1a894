"""``verify_repository`` called directly: what it counts, and each problem and warning it
reports (tampered notes through the CLI: tests/test_schema.py)."""

from __future__ import annotations

import pytest

import gitprov
from gitprov.store.ledger import run_dir, run_link_path
from gitprov.store.prov_store import ProvStore
from gitprov.verify import verify_repository


def _prov(repo) -> gitprov.Repository:
    gitprov.init(repo.path, hooks=False)
    return gitprov.Repository(repo.path)


def _run(repo: gitprov.Repository, name: str = "r", **kw) -> str:
    with repo.start_run(name, environment=False, **kw) as run:
        run.log_metric("loss", 0.5)
    return run.id


def test_a_fresh_repository_warns_that_the_refs_do_not_exist(make_repo) -> None:
    report = verify_repository(ProvStore.open(make_repo().path))
    assert report.ok
    assert report.warnings == ["refs/notes/prov does not exist yet", "refs/prov/ledger does not exist yet"]
    assert (report.notes, report.records, report.runs) == (0, 0, 0)


def test_counts_notes_records_runs_and_lexicons(make_repo) -> None:
    repo = _prov(make_repo())
    repo.capture()
    _run(repo, "a")
    _run(repo, "b")
    report = verify_repository(repo.store)
    assert report.ok, report.problems
    assert (report.notes, report.records, report.runs) == (1, 2, 2)  # a capture and the runs line
    assert report.lexicons == [gitprov.Repository(repo.work_tree).show().schema]
    assert report.warnings == []


def test_accepts_a_repository_as_well_as_a_store(make_repo) -> None:
    repo = _prov(make_repo())
    _run(repo)
    assert verify_repository(repo).runs == verify_repository(repo.store).runs == 1


@pytest.mark.format3  # format 3's listing of runs under commits/, altered (the log's: tests/test_format4_log.py)
def test_a_run_whose_id_is_not_its_record_hash_is_a_problem(make_repo) -> None:
    repo = _prov(make_repo())
    run_id = _run(repo)
    repo.ledger.apply({f"{run_dir(run_id)}/record": b'{"forged":true}'}, "test: forge a record")
    problems = verify_repository(repo.store).problems
    assert problems[0] == f"run {run_id[:12]}: id does not match its record's content"
    # the index cannot decode it either and says so (issue 16: one problem, once)
    assert all(run_id[:12] in p for p in problems)


@pytest.mark.format3  # format 3's listing of runs under commits/, altered (the log's: tests/test_format4_log.py)
def test_a_run_without_a_record_is_a_problem(make_repo) -> None:
    repo = _prov(make_repo())
    run_id = _run(repo)
    repo.ledger.apply({f"{run_dir(run_id)}/record": None}, "test: drop the record")
    problems = verify_repository(repo.store).problems
    assert problems[0] == f"run {run_id[:12]}: no record"
    assert all(run_id[:12] in p for p in problems)


def test_a_note_line_that_is_not_a_record_is_a_problem(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    repo.capture()
    raw.git("notes", "--ref=prov", "append", "-m", "reviewed by alice", "HEAD")
    report = verify_repository(repo.store)
    assert not report.ok
    assert len(report.problems) == 1 and "line" in report.problems[0]
    assert report.records == 1  # the good line still counts


def test_a_note_without_its_runs_line_is_a_warning_and_the_runs_still_show(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    run_id = _run(repo)
    head = raw.git("rev-parse", "HEAD").strip()
    raw.git("update-ref", "-d", "refs/notes/prov")  # the notes ref reset: the runs line is gone
    report = verify_repository(repo.store)
    assert report.ok, report.problems
    assert f"the note of commit {head[:12]} has no runs line, so 'git notes --ref=prov show' does not say " \
        "where its runs are listed (the next run at it adds the line)" in report.warnings
    assert [r.run for r in repo.show("HEAD").runs] == [run_id]


def _unlist(repo: gitprov.Repository, *run_ids: str) -> str:
    head = repo.git.head()
    repo.store.ledger.apply({run_link_path(head, r): None for r in run_ids}, "test: unlist")
    return head


@pytest.mark.format3  # format 3's listing of runs under commits/, altered (the log's: tests/test_format4_log.py)
def test_an_unlisted_run_is_a_warning_naming_it(make_repo) -> None:
    repo = _prov(make_repo())
    run_id = _run(repo)
    head = _unlist(repo, run_id)
    report = verify_repository(repo.store)
    assert report.ok, report.problems
    assert any(w.startswith(f"run {run_id[:12]}: not listed under its commit {head[:12]}") for w in report.warnings)


@pytest.mark.format3  # format 3's listing of runs under commits/, altered (the log's: tests/test_format4_log.py)
def test_many_unlisted_runs_are_five_warnings_and_a_count(make_repo) -> None:
    repo = _prov(make_repo())
    ids = [_run(repo, f"r{i}") for i in range(7)]
    _unlist(repo, *ids)
    warnings = [w for w in verify_repository(repo.store).warnings if "not listed under" in w]
    assert len(warnings) == 6 and warnings[-1] == "... and 2 more runs not listed under their commits"


@pytest.mark.format3  # format 3's listing of runs under commits/, altered (the log's: tests/test_format4_log.py)
def test_a_run_listed_under_another_commit_is_a_problem(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    run_id = _run(repo)
    other = raw.commit("another")
    repo.store.ledger.apply({run_link_path(other, run_id): run_id}, "test: a false link")
    problems = verify_repository(repo.store).problems
    assert problems == [f"run {run_id[:12]}: listed under commit {other[:12]}, but made at "
                        f"{raw.git('rev-parse', 'HEAD~1').strip()[:12]}"]


@pytest.mark.format3  # format 3's listing of runs under commits/, altered (the log's: tests/test_format4_log.py)
def test_a_listed_entry_must_be_the_runs_record_and_the_run_must_exist(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    run_id = _run(repo)
    head = repo.git.head()
    ghost = repo.git.fmt.hash_object("blob", b"no such run")
    wrong = repo.git.odb.write("blob", b"something else")
    repo.store.ledger.apply({run_link_path(head, ghost): ghost, run_link_path(head, run_id): wrong}, "test: forged")
    problems = verify_repository(repo.store).problems
    assert f"commits/{head[:12]}…/{run_id[:12]}: names blob {wrong[:12]}, not the record of that run" in problems
    assert f"commits/{head[:12]}…: lists run {ghost[:12]}, which is not in the ledger" in problems


def test_lineage_naming_an_unknown_run_is_a_dangling_reference(make_repo) -> None:
    repo = _prov(make_repo())
    with repo.start_run("consumer", environment=False) as run:
        gitprov.lineage.of(run).with_input_artifact("abcd" * 10, "model.pt").register()
    warnings = verify_repository(repo.store).warnings
    assert [w for w in warnings if "dangling" in w] == [
        f"run {run.id[:12]}: lineage input names run {'abcd' * 3}, which is not in the ledger "
        "(a dangling reference; fetch it or ignore)"
    ]


def test_a_note_on_a_missing_commit_is_a_warning_with_the_prune_command(make_repo) -> None:
    raw = make_repo()
    repo = _prov(raw)
    ghost = "1" * len(raw.git("rev-parse", "HEAD").strip())
    repo.notes.add({ghost: [b"x"]}, "test: a note on a commit that is not here")
    report = verify_repository(repo.store)
    assert any("git notes --ref=prov prune" in w and ghost[:12] in w for w in report.warnings)


@pytest.mark.format3  # format 3's listing of runs under commits/, altered (the log's: tests/test_format4_log.py)
@pytest.mark.parametrize("page", [None, "BULK_MIN"])
def test_a_big_ledger_is_read_in_bulk_and_a_broken_run_in_it_is_named(make_repo, monkeypatch, page) -> None:
    """Past ``BULK_MIN`` runs verify reads through git cat-file, a page at a time; a run
    it cannot read there is read alone, named, and the runs after it (in its page and
    the next) are still checked."""
    from synthetic_ledger import build_ledger

    import gitprov.verify
    from gitprov.index.reading import BULK_MIN

    if page is not None:  # pages of BULK_MIN runs: 200, 200 (both through git) and 50
        monkeypatch.setattr(gitprov.verify, "_PAGE", BULK_MIN)
    count = 2 * BULK_MIN + 50
    raw = make_repo()
    raw.commit("code")
    ids = build_ledger(str(raw.path), count, seed=3).run_ids
    repo = gitprov.Repository(raw.path)
    for broken in (sorted(ids)[BULK_MIN // 2], sorted(ids)[BULK_MIN + BULK_MIN // 2]):
        repo.ledger.apply({f"{run_dir(broken)}/state": None}, "test: drop a state")
    report = verify_repository(repo.store)
    assert report.runs == count
    assert report.ok, report.problems  # a run without a state: its record still checks out
    wrong = sorted(ids)[-1]
    repo.ledger.apply({f"{run_dir(wrong)}/record": b'{"format_version":2}'}, "test: a forged record")
    report = verify_repository(repo.store)
    assert report.runs == count
    assert report.problems == [f"run {wrong[:12]}: id does not match its record's content"]
