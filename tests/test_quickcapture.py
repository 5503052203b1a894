"""The lean capture path writes exactly what the full path writes, without msgspec."""

from __future__ import annotations

import subprocess
import sys

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

import gitprov
from gitprov import codec
from gitprov.model import CommitCapture
from gitprov.quickcapture import canonical_json, capture_fields, try_capture_head


def test_fields_encode_exactly_like_the_full_path(repo, monkeypatch):
    repo.commit("locks", {"uv.lock": "x", "requirements-dev.txt": "y", "pyproject.toml": "z"})
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("CI_JOB_ID", "héllo \"quoted\" \\ \n\t\x01")
    prov = gitprov.Repository(repo.path)
    head = prov.git.head()
    fields = capture_fields(prov.git, head, "hook", now=1_700_000_000.25)
    full = prov.build_capture(head, trigger="hook")
    full = msgspec.structs.replace(full, captured_at=fields["captured_at"])
    assert canonical_json(fields) == codec.encode(full)
    assert codec.decode(canonical_json(fields), CommitCapture) == full


plain = st.recursive(
    st.one_of(st.text(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), plain, max_size=6))
def test_stdlib_json_writes_msgspec_canonical_bytes(obj):
    try:
        expected = codec.encode(obj)
    except gitprov.DataError:  # e.g. lone surrogates: neither path can store them
        return
    assert canonical_json(obj) == expected


def test_lean_path_defers_to_the_full_path(repo):
    gitprov.init(repo.path, hooks=False)
    path = str(repo.path)
    head = repo.git("rev-parse", "HEAD").strip()
    assert try_capture_head(path, "cli") == head
    assert try_capture_head(path, "cli") is None  # has a note now: full path decides
    repo.commit("settings", {".provenance.toml": "[inputs]\npaths = []\n"})
    assert try_capture_head(path, "cli") is None
    (repo.path / ".provenance.toml").unlink()
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "picked\n\n(cherry picked from commit " + head + ")")
    assert try_capture_head(path, "cli") is None
    assert gitprov.Repository(path).verify().ok
    repo.fsck()


def test_lean_capture_does_not_load_msgspec(repo):
    code = (
        "import sys; from gitprov.quickcapture import try_capture_head; "
        "assert try_capture_head('.', 'hook'); "
        "assert 'msgspec' not in sys.modules, 'msgspec was imported'; "
        "assert 'typing' not in sys.modules, 'typing was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo.path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    shown = gitprov.show("HEAD", repo.path)
    assert len(shown.captures) == 1 and shown.captures[0].trigger == "hook"
