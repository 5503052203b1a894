"""Every ``--json`` output on a repository holding a run whose metrics are NaN, +Inf and
-Inf: exit 0, valid JSON, and the non-finite values tagged ``{"$float": ...}`` exactly
as ``prov runs --json`` and the stored records tag them."""

from __future__ import annotations

import json
import math
import os

import pytest
from click.testing import CliRunner

import gitprov
from gitprov.cli.app import cli

_TAGS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@pytest.fixture
def object_format() -> str:
    return "sha1"


def _untag(value):
    """The oracle: the documented tag form read back by hand."""
    if isinstance(value, dict):
        if set(value) == {"$float"}:
            return _TAGS[value["$float"]]
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture
def nonfinite(prov_repo, monkeypatch):
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run("odd", params={"lr": 0.1}) as a:
        a.log_metric("nan", math.nan)
        a.log_metric("pinf", math.inf)
        a.log_metric("ninf", -math.inf)
        a.log_observation("obs", [1.5, 2.5])
    with repo.start_run("plain") as b:
        b.log_metric("nan", 1.0)
    monkeypatch.chdir(prov_repo.path)
    return a, b


def _json(args: list[str]):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return json.loads(result.output)


def _metric_values(metrics: dict) -> dict:
    return {k: _untag(m)["value"] if isinstance(m, dict) and "value" in m else _untag(m) for k, m in metrics.items()}


def test_runs_show_json_round_trips_nonfinite_metrics(nonfinite):
    a, _ = nonfinite
    shown = _json(["runs", "show", a.id, "--json"])
    values = _metric_values(shown["state"]["metrics"])
    assert math.isnan(values["nan"]) and values["pinf"] == math.inf and values["ninf"] == -math.inf
    assert shown["state"]["metrics"]["nan"]["value"] == {"$float": "NaN"}
    # the same tags as the listing, which was right already
    listed = {r["id"]: r for r in _json(["runs", "--json"])}
    assert listed[a.id]["metrics"]["pinf"] == shown["state"]["metrics"]["pinf"]["value"] == {"$float": "Infinity"}
    assert listed[a.id]["metrics"]["ninf"] == {"$float": "-Infinity"}


def test_runs_diff_json_tags_nonfinite_values(nonfinite):
    a, b = nonfinite
    rows = {(r["section"], r["key"]): (r["a"], r["b"]) for r in _json(["runs", "diff", a.id, b.id, "--json"])}
    assert rows[("metrics", "nan")] == ({"$float": "NaN"}, 1.0)
    assert _same(_untag(rows[("metrics", "pinf")][0]), math.inf)


@pytest.mark.parametrize("args", [
    ["show", "--json"], ["log", "--json"], ["status", "--json"], ["verify", "--json"],
    ["capture", "--json"], ["hooks", "status", "--json"],
])
def test_commit_level_json_outputs_are_valid(nonfinite, args):
    _json(args)  # valid JSON, exit 0, whatever the runs hold


def test_lineage_json_is_valid(nonfinite):
    a, _ = nonfinite
    graph = _json(["lineage", a.id, "--format", "json"])
    assert any(node["id"] == f"run:{a.id}" for node in graph["nodes"])


def test_tagged_records_are_still_refused_when_stored(nonfinite):
    # the output path accepts tags; the storing path still refuses a user's '$float' key
    a, _ = nonfinite
    repo = gitprov.Repository(os.getcwd())
    with pytest.raises(gitprov.UsageError), repo.start_run("x") as run:
        run.log_attribute("bad", {"$float": "NaN"})
