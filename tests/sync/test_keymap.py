"""The reversible key mapping for MLflow."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitprov.errors import UsageError
from gitprov.keys import check_key
from gitprov.sync.keymap import mlflow_key, prov_key

# imported here, not in the test: hypothesis would time the first call's import
validation = pytest.importorskip("mlflow.utils.validation")


@pytest.mark.parametrize(("key", "mapped"), [
    ("train/loss", "train/loss"), ("val acc", "val acc"), ("x_y", "x_y"), ("accuracy", "accuracy"),
    ("acc@1", "acc_x401"), ("k:v", "k_x3av"), ("a_x", "a_x5fx"), ("a//b", "a_x2f_x2fb"), ("a/", "a_x2f"),
    ("$cost", "_x24cost"), ("..0", "_x2e.0"), ("a/./b", "a/_x2e/b"), ("a/..", "a/_x2e."), ("a..b", "a..b"),
])
def test_examples(key: str, mapped: str) -> None:
    assert mlflow_key(key) == mapped
    assert prov_key(mapped) == key


@given(st.text(min_size=1, max_size=60))
def test_round_trip_and_mlflow_accepts_the_result(key: str) -> None:
    try:
        check_key(key)
    except UsageError:
        return
    mapped = mlflow_key(key)
    if mapped.endswith("_h" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]):
        assert len(mapped) <= 250  # escaped past 250 characters: the one lossy case, shortened
    else:
        assert prov_key(mapped) == key
    validation._validate_metric_name(mapped)
    validation._validate_param_name(mapped)
    validation._validate_tag_name(mapped)


def test_overlong_keys_are_shortened_with_a_digest() -> None:
    key = "@" * 200
    mapped = mlflow_key(key)
    assert len(mapped) <= 250 and mapped.startswith("_x40") and mapped != mlflow_key("@" * 199 + "#")
    assert prov_key(mapped) != key  # the one lossy case: the run keeps it in its prov.keys tag


def test_a_short_key_of_many_escaped_characters_is_shortened_not_broken() -> None:
    key = "000000000000000:" + "\x80" * 44  # found by hypothesis: 16 + 44 characters, 372 escaped
    mapped = mlflow_key(key)
    assert len(mapped) <= 250 and mapped.startswith("000000000000000_x3a_xc2_x80")
    validation._validate_metric_name(mapped)
