"""The lexicon: the committed copies match the model, captures validate against the
schema they pin, and ``prov verify`` catches tampering."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitprov import api, codec, schema
from gitprov.cli.app import cli
from gitprov.model import CommitCapture

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = [Path(schema.__file__).parent / "lexicon", ROOT / schema.LEXICON_DIR]
HOW_TO_FIX = "the lexicon drifted from the model; run `python -m gitprov.schema write` and commit the result"


@pytest.mark.parametrize("where", COMMITTED, ids=["packaged", "project"])
def test_committed_lexicon_matches_the_model(where: Path) -> None:
    generated = schema.generate()
    on_disk = {p.name: p.read_bytes() for p in where.glob("*.json")}
    assert sorted(on_disk) == sorted(generated), f"{where}: files differ; {HOW_TO_FIX}"
    for name, data in generated.items():
        assert on_disk[name] == data, f"{where / name} is stale; {HOW_TO_FIX}"


def test_generate_is_deterministic_and_manifest_lists_every_schema() -> None:
    files = schema.generate()
    assert files == schema.generate()
    manifest = json.loads(files["manifest.json"])
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert set(manifest["files"]) == set(files) - {"manifest.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(files[name]).hexdigest() == digest
    for name, data in files.items():
        if name != "manifest.json":
            doc = json.loads(data)
            assert doc["$schema"].endswith("2020-12/schema")


def test_packaged_lexicon_is_intact_and_pins_its_manifest() -> None:
    lex = schema.package_lexicon()
    assert lex.problems() == []
    assert lex.hash == "sha256:" + hashlib.sha256(lex.files["manifest.json"]).hexdigest()
    assert schema.current_pin() == lex.pin
    from jsonschema import Draft202012Validator

    for name, data in lex.files.items():
        if name.endswith(".schema.json"):
            Draft202012Validator.check_schema(json.loads(data))


def test_capture_validates_against_its_pinned_schema(repo) -> None:
    api.init(repo.path)
    result = api.capture("HEAD", repo.path)
    line = repo.git("notes", "--ref=prov", "show", "HEAD").strip().encode()
    record = codec.decode_note_line(line)
    assert isinstance(record, CommitCapture) and record == result.capture
    lex = schema.Lexicon.from_dir(str(repo.path / schema.LEXICON_DIR))
    assert record.schema.lexicon == lex.hash == schema.package_lexicon().hash
    assert lex.validate(json.loads(line), "commit") == []


def test_schema_rejects_a_tampered_record() -> None:
    lex = schema.package_lexicon()
    good = {
        "kind": "run",
        "format_version": 1,
        "run": "r" * 40,
        "created": "2026-01-01T00:00:00Z",
        "schema": {"lexicon": lex.hash, "version": 1},
    }
    assert lex.validate(good, "run") == []
    assert lex.validate({**good, "created": 5}, "run")
    assert any("run" in m for m in lex.validate({k: v for k, v in good.items() if k != "run"}, "run"))
    assert lex.validate({**good, "kind": "commit"}, "run")


def _verify(path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(path)
    return CliRunner().invoke(cli, ["verify", "--json"])


def _retamper(repo, change) -> None:
    line = json.loads(repo.git("notes", "--ref=prov", "show", "HEAD").strip())
    change(line)
    repo.git("notes", "--ref=prov", "add", "-f", "-m", json.dumps(line, sort_keys=True, separators=(",", ":")), "HEAD")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda r: r.update(tool=42), "line 1"),
        (lambda r: r.pop("environment"), "line 1"),
        (lambda r: r["environment"].update(distributions_count="many"), "line 1"),
        (lambda r: r["schema"].update(lexicon="sha256:" + "0" * 64), "not available"),
        (lambda r: r.update(commit="f" * len(r["commit"])), "not its own"),
    ],
    ids=["wrong-type", "missing-field", "nested-wrong-type", "unknown-pin", "other-commit"],
)
def test_verify_reports_a_tampered_record(make_repo, monkeypatch: pytest.MonkeyPatch, tamper, expected: str) -> None:
    repo = make_repo("sha1")
    api.init(repo.path)
    api.capture("HEAD", repo.path)
    ok = _verify(repo.path, monkeypatch)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["problems"] == []
    _retamper(repo, tamper)
    result = _verify(repo.path, monkeypatch)
    assert result.exit_code == 8, result.output
    problems = json.loads(result.stdout)["problems"]
    assert problems and any(expected in p for p in problems), problems
    assert result.stderr.strip().splitlines() == [f"prov: error: {len(problems)} problem(s) found"]


def test_verify_reports_a_tampered_vendored_lexicon(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo("sha1")
    api.init(repo.path)
    api.capture("HEAD", repo.path)
    target = repo.path / schema.LEXICON_DIR / "commit.schema.json"
    target.write_bytes(target.read_bytes().replace(b'"type": "string"', b'"type": "integer"', 1))
    result = _verify(repo.path, monkeypatch)
    assert result.exit_code == 8
    assert any("does not match its sha256" in p for p in json.loads(result.stdout)["problems"])


def test_schema_show_and_verify_commands(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo("sha1")
    monkeypatch.chdir(repo.path)
    runner = CliRunner()
    shown = runner.invoke(cli, ["schema", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["lexicon"] == schema.package_lexicon().hash and info["vendored"] is None
    assert "run 'prov init'" in runner.invoke(cli, ["schema", "show"]).stdout
    api.init(repo.path)
    assert json.loads(runner.invoke(cli, ["schema", "show", "--json"]).stdout)["vendored"] == info["lexicon"]
    assert "matches" in runner.invoke(cli, ["schema", "show"]).stdout
    api.capture("HEAD", repo.path)
    verified = runner.invoke(cli, ["schema", "verify"])
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.strip().endswith("ok")
    assert os.path.isdir(repo.path / schema.LEXICON_DIR)
