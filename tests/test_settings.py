"""``.provenance.toml``: loaded with msgspec; an invalid file names every bad field (pydantic)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitprov.errors import ConfigError
from gitprov.settings import SETTINGS_FILE, Settings, _invalid_fields, load_settings


def write(tmp_path: Path, text: str) -> str:
    (tmp_path / SETTINGS_FILE).write_text(text)
    return str(tmp_path)


def test_every_invalid_field_in_one_error(tmp_path: Path) -> None:
    work_tree = write(tmp_path, '[inputs]\npaths = ["ok", 3]\n[hooks]\nstrict = "yes"\nstrcit = true\n')
    with pytest.raises(ConfigError) as info:
        load_settings(work_tree)
    message = str(info.value)
    assert message == (
        ".provenance.toml is invalid: inputs.paths.1: Input should be a valid string; "
        "hooks.strict: Input should be a valid boolean; hooks.strcit: unknown field; "
        "fix these keys (see docs/concepts.md#settings)"
    )


def test_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid: hooks: Input should be a table; extra: unknown field; fix"):
        load_settings(write(tmp_path, 'hooks = true\n[extra]\n'))


def test_a_key_with_a_control_character_stays_on_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid: hooks\.'a\\nb': unknown field; fix") as info:
        load_settings(write(tmp_path, '[hooks]\n"a\\nb" = 1\n'))
    assert "\n" not in str(info.value)


def test_broken_toml_keeps_the_parser_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\.provenance\.toml is invalid: .*line 1.*; see docs/concepts.md#settings$"):
        load_settings(write(tmp_path, "[inputs\n"))


def test_a_good_file_loads_without_pydantic(tmp_path: Path) -> None:
    work_tree = write(tmp_path, '[inputs]\npaths = ["data/*.csv"]\n[hooks]\nstrict = true\n')
    code = ("import sys\nfrom gitprov.settings import load_settings\n"
            f"s = load_settings({work_tree!r})\n"
            "print(s.inputs.paths, s.hooks.strict, 'pydantic' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["['data/*.csv']", "True", "False"]


_VALUES = st.one_of(st.booleans(), st.integers(), st.text(max_size=3), st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=3))
_SECTION = st.dictionaries(st.sampled_from(["paths", "strict", "other"]), _VALUES, max_size=3)
_DOCUMENTS = st.dictionaries(st.sampled_from(["inputs", "hooks", "extra"]), st.one_of(_SECTION, _VALUES), max_size=3)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DOCUMENTS)
def test_pydantic_finds_errors_exactly_when_msgspec_refuses(document: dict) -> None:
    """The pydantic twin of the msgspec Structs accepts and refuses the same documents."""
    try:
        msgspec.convert(document, Settings)
        refused = False
    except msgspec.ValidationError:
        refused = True
    assert bool(_invalid_fields(document)) == refused
