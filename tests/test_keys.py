"""``keys.check_label``: the one rule for free-text labels (run names, experiments, model
names and versions, dataset keys), and the places that use it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitprov import UsageError, lineage
from gitprov.keys import check_label

CONTROL = st.characters(max_codepoint=31) | st.just("\x7f")
# no lone surrogate (category Cs): a label must be valid Unicode (refused: tests/test_bad_inputs.py)
PRINTABLE = st.characters(min_codepoint=32, blacklist_characters="\x7f", blacklist_categories=("Cs",))


@given(st.text(PRINTABLE, max_size=250))
def test_printable_strings_up_to_250_characters_are_labels(text: str) -> None:
    assert check_label(text, "run name") is text


@given(st.text(PRINTABLE, max_size=120), CONTROL, st.text(PRINTABLE, max_size=120))
def test_a_control_character_or_del_is_refused(before: str, control: str, after: str) -> None:
    with pytest.raises(UsageError, match=r"^run name .* must be at most 250 printable characters$"):
        check_label(before + control + after, "run name")


@given(st.text(PRINTABLE, min_size=251, max_size=400))
def test_more_than_250_characters_are_refused(text: str) -> None:
    shown = re.escape(repr(text[:40]))
    with pytest.raises(UsageError, match=rf"^experiment {shown}… must be at most 250 printable characters$"):
        check_label(text, "experiment")


@pytest.mark.parametrize("value", [None, 3, 2.5, True, b"bytes", ["a"]], ids=repr)
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(UsageError, match=rf"^model name must be a string of at most 250 printable characters, got {type(value).__name__}$"):
        check_label(value, "model name")


def test_required_labels_must_not_be_empty() -> None:
    assert check_label("", "run name") == ""
    with pytest.raises(UsageError, match=r"^dataset key '' must be 1 to 250 printable characters$"):
        check_label("", "dataset key", required=True)
    assert check_label("x" * 250, "dataset key", required=True) == "x" * 250


def test_lineage_labels_follow_the_rule() -> None:
    assert lineage.Query().with_input_model("bert", 3).render() == {"inputs.models.bert": "3"}
    for bad in ("a\x7fb", "a\nb", "", "x" * 251):
        with pytest.raises(UsageError, match="model name .* must be 1 to 250 printable characters"):
            lineage.Query().with_input_model(bad)
    with pytest.raises(UsageError, match="model version must be a string of 1 to 250 printable characters, got bool"):
        lineage.Query().with_input_model("bert", True)
