"""Nothing silently unpushed: a push that fails waits in the outbox until a push
delivers it, and ``prov status`` shows what each remote, tracker and rewrite lacks.

Real git, bare remotes over ``file://``, the installed ``prov`` and plain ``git push``
through the installed pre-push hook.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gitprov.api import Repository
from gitprov.exchange import outbox
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo, run_git, run_prov
from tests.exchange.clones import clone, ledger_run_ids, make_run, notes_content, prov_ok, seed_bare

pytestmark = pytest.mark.gitbin


def _status(path: Path) -> dict:
    return json.loads(prov_ok(path, "status", "--json").stdout)


def _remote(status: dict, name: str) -> dict:
    return next(r for r in status["remotes"] if r["remote"] == name)


def _outbox(path: Path) -> dict:
    file = path / ".git" / "prov" / outbox.OUTBOX
    return json.loads(file.read_text())["pending"] if file.exists() else {}


def _hooked_clone(url: str, path: Path) -> GitRepo:
    run_git(path.parent, "clone", "-q", url, str(path))
    prov_ok(path, "init", "--no-pull")  # installs the hooks
    return GitRepo(path)


def test_an_unreachable_remote_leaves_an_outbox_entry_the_next_git_push_clears(make_repo, tmp_path: Path) -> None:
    bare = seed_bare(make_repo)
    url = f"file://{bare.path}"
    a = _hooked_clone(url, tmp_path / "a")
    run_id = make_run(a.path, "offline")
    a.git("remote", "set-url", "origin", f"file://{tmp_path}/gone.git")  # the remote is unreachable
    for attempt in (1, 2):
        proc = run_prov(a.path, "push")
        assert proc.returncode == 11 and "gone.git" in proc.stderr, proc.stderr
        entry = _outbox(a.path)["origin"]
        assert entry["attempts"] == attempt and "does not appear to be a git repository" in entry["last_error"]
        assert entry["refs"]["refs/prov/ledger"] == a.git("rev-parse", "refs/prov/ledger").strip()
    assert entry["since"] < entry["last_attempt"]

    status = _status(a.path)
    origin = _remote(status, "origin")
    assert origin["pending"]["attempts"] == 2 and not origin["clean"] and not status["clean"]
    text = prov_ok(a.path, "status").stdout
    assert "push pending since" in text and "2 failed attempt(s)" in text and "gone.git" in text, text

    a.git("remote", "set-url", "origin", url)  # back online: the next plain git push carries it
    a.commit("more work")
    proc = subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=a.path,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "provenance not" not in proc.stderr, proc.stderr
    assert _outbox(a.path) == {}
    assert not (a.path / ".git" / "prov" / outbox.OUTBOX).exists()
    assert run_id in ledger_run_ids(bare.path)
    status = _status(a.path)
    assert _remote(status, "origin")["clean"] and status["clean"], status


@pytest.mark.parametrize("broken", ["refs/prov/ledger", "refs/notes/prov"])
def test_a_pre_push_hook_failing_on_a_broken_ref_is_kept_pending(make_repo, tmp_path: Path, broken: str) -> None:
    """A prov ref is a symbolic ref to itself: the hook fails before ``push()`` runs
    (the ledger, read first) or inside it (the notes); either way the push is kept in
    the outbox, with the tips that could be read, and the next push delivers it."""
    from gitprov.exchange.remote import EXCHANGED_REFS
    from gitprov.githooks.runtime import PUSHED_REFS

    assert PUSHED_REFS == EXCHANGED_REFS
    bare = seed_bare(make_repo)
    a = _hooked_clone(f"file://{bare.path}", tmp_path / "a")
    run_id = make_run(a.path, "r")
    a.commit("work")
    tips = {ref: a.git("rev-parse", ref).strip() for ref in EXCHANGED_REFS}
    loop = a.path / ".git" / broken
    a.git("update-ref", "-d", broken)
    loop.parent.mkdir(parents=True, exist_ok=True)
    loop.write_text(f"ref: {broken}\n")
    proc = subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=a.path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # not strict: the branch push goes on
    assert "provenance not pushed" in proc.stderr and "symbolic ref loop" in proc.stderr, proc.stderr
    assert "stays pending" in proc.stderr, proc.stderr
    entry = _outbox(a.path)["origin"]
    assert "symbolic ref loop" in entry["last_error"] and entry["attempts"] == 1
    assert entry["refs"] == {ref: oid for ref, oid in tips.items() if ref != broken}  # what could be read
    assert bare.git("for-each-ref", "refs/prov", "refs/notes") == ""  # nothing went out

    loop.unlink()
    a.git("update-ref", broken, tips[broken])
    a.commit("more work")
    proc = subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=a.path,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "provenance not" not in proc.stderr, proc.stderr
    assert _outbox(a.path) == {}  # the next push delivered it
    assert ledger_run_ids(bare.path) == {run_id}


def test_a_refusal_inside_the_pre_push_hook_is_kept_pending_not_forgotten(make_repo, tmp_path: Path) -> None:
    bare = seed_bare(make_repo)
    a = _hooked_clone(f"file://{bare.path}", tmp_path / "a")
    hook = bare.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in refs/prov/*|refs/notes/*) "
                    "echo 'provenance refs are frozen today' >&2; exit 1;; esac; done\nexit 0\n")
    hook.chmod(0o755)
    run_id = make_run(a.path, "r")
    a.commit("work")
    proc = subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], cwd=a.path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # not strict: the branch push goes on
    assert "provenance not pushed" in proc.stderr and "stays pending" in proc.stderr, proc.stderr
    assert "prov status" in proc.stderr
    entry = _outbox(a.path)["origin"]
    assert "pre-receive hook declined" in entry["last_error"] and "frozen today" in entry["last_error"]
    assert bare.git("for-each-ref", "refs/prov", "refs/notes") == ""  # nothing went out

    hook.unlink()
    proc = run_prov(a.path, "status")
    assert "push pending" in proc.stdout and "frozen today" in proc.stdout, proc.stdout
    prov_ok(a.path, "push")  # prov push clears it as well
    assert _outbox(a.path) == {}
    assert ledger_run_ids(bare.path) == {run_id}


def test_a_concurrent_newer_failure_is_not_cleared_by_an_older_success(make_repo) -> None:
    repo = make_repo()
    prov_ok(repo.path, "init", "--no-hooks", "--no-pull")
    git = GitRepository.open(str(repo.path))
    first = repo.git("rev-parse", "HEAD").strip()
    second = repo.commit("next")
    outbox.record(git, "origin", "cannot push", {"refs/prov/ledger": second})
    outbox.clear(git, "origin", lambda refs: refs == {"refs/prov/ledger": first})  # delivered older tips only
    assert [p.remote for p in outbox.pending(git)] == ["origin"]
    outbox.clear(git, "origin", lambda refs: True)
    assert outbox.pending(git) == []


def test_credentials_never_reach_the_outbox(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    prov_ok(repo.path, "init", "--no-hooks", "--no-pull")
    make_run(repo.path, "r")
    url = "https://alice:s3cret-token@127.0.0.1:9/proj.git"
    proc = run_prov(repo.path, "push", url, env={"GIT_TERMINAL_PROMPT": "0"})
    assert proc.returncode == 11
    text = (repo.path / ".git" / "prov" / outbox.OUTBOX).read_text()
    assert "s3cret-token" not in text and "alice" not in text
    [entry] = outbox.pending(GitRepository.open(str(repo.path)))
    assert entry.credentials_dropped and entry.remote.startswith("https://") and "127.0.0.1:9/proj.git" in entry.remote
    assert "the URL with its credentials" in prov_ok(repo.path, "status").stdout


def test_status_lists_runs_changes_and_notes_each_remote_lacks(make_repo, tmp_path: Path) -> None:
    bare = seed_bare(make_repo)
    a = clone(f"file://{bare.path}", tmp_path / "a")
    never = _status(a.path)
    assert _remote(never, "origin")["exchanged"] is False
    assert "never pushed to or fetched from here" in prov_ok(a.path, "status").stdout

    tagged = make_run(a.path, "tagged")
    pushed = make_run(a.path, "pushed")
    prov_ok(a.path, "push")
    assert _remote(_status(a.path), "origin")["clean"]

    Repository(a.path).get_run(tagged).rename("renamed later")  # the run changes after it was pushed
    fresh = make_run(a.path, "fresh")
    commit = a.commit("captured")
    prov_ok(a.path, "capture")
    origin = _remote(_status(a.path), "origin")
    assert origin["exchanged"] and not origin["clean"]
    assert origin["runs_added"] == [fresh]
    assert origin["runs_changed"] == [tagged]
    assert commit in origin["notes"]
    assert pushed not in origin["runs_added"] + origin["runs_changed"]
    text = prov_ok(a.path, "status").stdout
    assert "1 run(s) not pushed" in text and "1 run(s) changed since pushed" in text and "commit note(s)" in text

    prov_ok(a.path, "push")
    assert _remote(_status(a.path), "origin")["clean"]
    assert commit in notes_content(bare.path)


def test_status_lists_runs_not_synced_per_tracker(make_repo) -> None:
    from gitprov.index.store import index_of
    from gitprov.sync.state import SyncState

    repo = make_repo()
    prov_ok(repo.path, "init", "--no-hooks", "--no-pull")
    assert _status(repo.path)["trackers"] == []
    synced, stale, failed, new = (make_run(repo.path, n) for n in ("synced", "stale", "failed", "new"))
    api = Repository(repo.path)
    trees = {run_id: tree for run_id, tree, _, _ in index_of(api.store).live_runs()}
    state = SyncState(str(repo.path / ".git" / "prov" / "sync"), "mlflow-example-0123456789ab",
                      "mlflow http://example:5000")
    state.put(synced, {"version": trees[synced], "external_id": "e1"})
    state.put(stale, {"version": "0" * 40, "external_id": "e2"})
    state.put(failed, {"version": None, "error": "connection refused"})
    state.save(force=True)
    repo.git("config", "prov.sync.auto", "mlflow wandb")

    trackers = {t["kind"]: t for t in _status(repo.path)["trackers"]}
    assert set(trackers) == {"mlflow", "wandb"}
    assert trackers["mlflow"]["target"] == "http://example:5000"
    assert sorted(trackers["mlflow"]["unsynced"]) == sorted([stale, new])
    assert trackers["mlflow"]["failed"] == {failed: "connection refused"}
    assert trackers["wandb"]["never_synced"] and len(trackers["wandb"]["unsynced"]) == 4
    text = prov_ok(repo.path, "status").stdout
    assert "sync mlflow http://example:5000: 2 run(s) not synced, 1 failed" in text, text
    assert "sync wandb: never synced; 4 run(s) to sync" in text, text


def test_status_lists_commits_a_squash_merge_left_for_relink(make_repo) -> None:
    repo = make_repo()
    prov_ok(repo.path, "init", "--no-hooks", "--no-pull")
    repo.git("checkout", "-q", "-b", "feature")
    first = repo.commit("f1")
    run_1 = make_run(repo.path, "on-f1")
    second = repo.commit("f2")
    run_2 = make_run(repo.path, "on-f2")
    repo.git("checkout", "-q", "-")
    make_run(repo.path, "on-main")
    assert _status(repo.path)["relinks"] == []  # the feature branch still reaches them

    repo.git("merge", "-q", "--squash", "feature")
    repo.git("commit", "-q", "-m", "squashed")
    squash = repo.git("rev-parse", "HEAD").strip()
    repo.git("branch", "-q", "-D", "feature")
    relinks = {r["commit"]: r["runs"] for r in _status(repo.path)["relinks"]}
    assert relinks == {first: [run_1], second: [run_2]}
    text = prov_ok(repo.path, "status").stdout
    assert "relink: 2 run(s) on 2 commit(s)" in text and "prov relink" in text, text

    prov_ok(repo.path, "relink", first, squash)
    assert [r["commit"] for r in _status(repo.path)["relinks"]] == [second]
    prov_ok(repo.path, "relink", second, squash)
    status = _status(repo.path)
    assert status["relinks"] == [] and status["clean"]
