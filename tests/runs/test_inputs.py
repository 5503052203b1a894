"""Declared data inputs: hashing, the stat cache, and unreadable files."""

from __future__ import annotations

import pytest

from gitprov.errors import ConfigError
from gitprov.runs import inputs


def test_inputs_hashed_and_cached(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1,2\n")
    prov_dir = tmp_path / "prov"
    first = inputs.hash_inputs(str(tmp_path), ["data/*.csv"], str(prov_dir))
    assert [(i.path, i.size) for i in first] == [("data/a.csv", 4)]
    calls = []
    monkeypatch.setattr(inputs, "sha256_file", lambda p: calls.append(p) or "x")
    assert inputs.hash_inputs(str(tmp_path), ["data/*.csv"], str(prov_dir)) == first
    assert calls == []  # unchanged file: answered from the stat cache


def test_unreadable_input_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "x.csv").write_text("1")

    def denied(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(inputs, "sha256_file", denied)
    with pytest.raises(ConfigError, match="cannot read declared input x.csv: Permission denied"):
        inputs.hash_inputs(str(tmp_path), ["*.csv"], None)
