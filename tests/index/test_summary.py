"""A found run's summary (name, status, times, params, metrics, tags, attributes) comes
from the index rows, and equals what reading the run's record gives: random runs with
NaN/±Inf/-0.0 metrics, every kind of param (redacted secrets, lists, null, huge
integers, strings that look like numbers), deleted and renamed runs, tags changed after
the end; what the rows cannot hold exactly is read from the record."""

from __future__ import annotations

import math
import random
import sqlite3
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gitprov
from gitprov.index import search, summary
from gitprov.index.rows import _plain_attribute, _plain_param, param_row, sql_value
from gitprov.index.tables import SCHEMA

#: params a run may get: (value, plain: its row gives it back exactly)
PARAM_VALUES = [
    ("adam", True), ("0.01", True), ("true", True), ("null", True), ("NaN", True), ("", True), ("日本", True),
    (0.01, True), (-0.0, True), (1e300, True), (3, True), (-2**63, True), (2**63 - 1, True), (True, True),
    (False, True), (2**70, False), (None, False), ([1, "a"], False), ({"b": 1, "a": [2]}, False),
]
METRIC_VALUES = [0.5, 1.0, -3.25, 0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e-310]
ATTRIBUTE_VALUES = ["x", 3, 2.5, None, -0.0, True, {"k": [1, 2]}, [1], 2**64]


def same(a, b) -> bool:
    """Equal as stored: NaN equals NaN, -0.0 differs from 0.0, 1 from True and 1.0, and
    dicts keep their key order."""
    if isinstance(a, float) and isinstance(b, float):
        return (a != a and b != b) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    return a == b


def summary_of(run) -> dict:
    return {"name": run.name, "experiment": run.experiment, "status": run.status,
            "created": run.get_date_created(), "updated": run.get_date_updated(),
            "params": run.get_hyperparameters(), "param": run.get_hyperparameter("p0"),
            "metrics": run.get_metrics(), "metric": run.get_metric("m0"), "metric_keys": run.get_metric_keys(),
            "tags": run.get_tags(), "attributes": run.get_attributes(), "attribute": run.get_attribute("a0")}


@pytest.fixture(scope="module")
def random_runs(tmp_path_factory):
    """A repository of 40 runs made through the public API from a seeded generator."""
    import subprocess

    path = tmp_path_factory.mktemp("summary") / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for key, value in (("user.name", "Summary"), ("user.email", "summary@example.com"),
                       ("prov.autoPackLimit", "0")):  # module-scoped: before the per-test isolation
        subprocess.run(["git", "-C", str(path), "config", key, value], check=True)
    (path / "f.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(path), "add", "f.txt"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "base"], check=True)
    gitprov.init(str(path), hooks=False)
    repo = gitprov.Repository(str(path))
    rng = random.Random(17)
    for i in range(40):
        params = {f"p{k}": rng.choice(PARAM_VALUES)[0] for k in rng.sample(range(6), rng.randint(0, 4))}
        if rng.random() < 0.2:
            params["api_token"] = "s3cr3t-value"  # a secret's name: stored as a redaction mark
        tags = {f"t{k}": rng.choice(["a", "", "v 1", "日"]) for k in rng.sample(range(4), rng.randint(0, 3))}
        if i % 4 == 1:  # names a struct field cannot have, first seen after names they sort before
            params.update({"lr.x": 0.5, "class": "b", "_u": 2, "é": True, "a b": "c"})
            tags["mlflow.note"] = "x"
        with repo.start_run(name=f"run-{i}", experiment=rng.choice(["", "e1", "e2"]), params=params, tags=tags,
                            code=False, environment=False) as run:
            for k in rng.sample(range(4), rng.randint(0, 3)):
                run.log_metric(f"m{k}", rng.choice(METRIC_VALUES))
            attributes = {f"a{k}": rng.choice(ATTRIBUTE_VALUES) for k in rng.sample(range(4), rng.randint(0, 3))}
            run.log_attributes(attributes)
            if rng.random() < 0.3:
                run.log_hyperparameters({"p9": rng.choice(PARAM_VALUES)[0], "a_late": 1})  # state params
            if rng.random() < 0.2:
                run.rename(f"renamed-{i}")
        if rng.random() < 0.25:
            run.log_tags({"after": "end", **({"t0": "changed"} if rng.random() < 0.5 else {})})  # after the end
        if rng.random() < 0.15:
            run.delete()
    return repo


@pytest.fixture(params=["columns", "rows", "key lists"])
def value_reads(request, monkeypatch):
    """Metrics and attributes read as a column per key (few keys that most runs have), or
    as rows (``_PIVOT_KEYS`` 0: the path of many or sparse keys); params and tags with
    their key ids as a bit mask, or as a list (``_MASK_BITS`` 0: the path of key ids past
    62)."""
    if request.param == "rows":
        monkeypatch.setattr(summary, "_PIVOT_KEYS", 0)
    if request.param == "key lists":
        monkeypatch.setattr(summary, "_MASK_BITS", 0)
    monkeypatch.setattr(summary, "_KEYS", {})  # the statements are made again
    return request.param


@pytest.mark.parametrize(("query", "order", "limit"), [
    (None, None, None), ("params.p0 = 'adam'", None, None), (None, "metrics.m0 desc", 15), (None, "name", 7),
])
def test_a_found_runs_summary_equals_the_stored_runs(random_runs, query, order, limit, monkeypatch, value_reads):
    repo = random_runs
    reads = []
    real = search.read_run_blobs
    monkeypatch.setattr(search, "read_run_blobs", lambda git, found: reads.append(len(found)) or real(git, found))
    found = repo.find_runs(query, order_by=order, limit=limit, include_deleted=True)
    assert found
    summaries = [summary_of(run) for run in found]
    stored = [summary_of(repo.get_run(run.id)) for run in found]
    for got, want in zip(summaries, stored, strict=True):
        assert same(got, want), (got, want)
    plain = all(not vars(run).get("_lazy_state") and not vars(run).get("_lazy_record") for run in found)
    assert reads == [] or not plain
    # the runs whose rows hold everything were never read from git
    index = repo.index().connection()
    raw = {key.hex() for (key,) in index.execute("SELECT id FROM runs WHERE raw IS NOT NULL")}
    for run in found:
        if run.id not in raw:
            assert vars(run).get("_lazy_state") is None and vars(run).get("_lazy_record") is None
    assert {r.id for r in found} & raw, "the generator made no run that needs its record"
    if query is None and limit is None:
        assert any(repo.get_run(r.id).state.deleted for r in found)
        assert any(run.name.startswith("renamed-") for run in found)


def test_the_statements_read_values_as_asked(random_runs, value_reads):
    repo = random_runs
    assert repo.find_runs(limit=3)[0].name
    keys = summary._keys(repo.index().connection())
    assert (keys.rows_sql is None) == (value_reads != "rows")
    assert set(keys.late) == (set() if value_reads != "rows" else {"metrics", "attributes"})
    assert keys.mask == (value_reads != "key lists")
    assert ("sum(1 << key)" in keys.sql) == keys.mask and ("group_concat(key)" in keys.sql) != keys.mask


def test_keys_added_by_another_process_are_read(random_runs, value_reads):
    """The key names are kept per connection; a run with keys the names lack, indexed by
    another connection (another process), is summarized with its own keys."""
    repo = random_runs
    first = repo.find_runs(limit=2)
    assert first[0].get_tags() is not None  # the names are read and kept
    other = gitprov.Repository(repo.work_tree)  # another store: another index connection
    assert other.index().connection() is not repo.index().connection()
    with other.start_run(name="late-keys", params={"brand_new": 7, "zeta.q": "z"}, tags={"new_tag": "v"},
                         code=False, environment=False) as run:
        run.log_metric("new_metric", 0.25)
        run.log_attributes({"new_attribute": "w"})
    other.find_runs(limit=1)  # that connection indexes the run and its new keys
    found = repo.find_runs("attributes.run_name = 'late-keys'")
    assert len(found) == 1
    new = found[0]
    assert new.get_hyperparameters() == {"brand_new": 7, "zeta.q": "z"}
    assert new.get_metrics() == {"new_metric": 0.25} and new.get_tags() == {"new_tag": "v"}
    assert new.get_attributes() == repo.get_run(new.id).get_attributes()
    assert "new_attribute" in new.get_attributes()
    assert vars(new).get("_lazy_state") is None and vars(new).get("_lazy_record") is None  # from the index
    assert same(summary_of(new), summary_of(repo.get_run(new.id)))
    new.delete()  # the other tests' runs as they were
    other.index().close()


def test_the_index_keeps_more_pages_than_sqlites_default(random_runs):
    db = random_runs.index().connection()
    assert db.execute("PRAGMA cache_size").fetchone()[0] <= -16384  # KiB


def test_a_summary_is_as_the_query_found_the_run(random_runs):
    repo = random_runs
    found = repo.find_runs("params.p0 = 'adam'", order_by="name")
    run = found[0]
    before = repo.get_run(run.id).get_tags()
    repo.get_run(run.id).log_tags({"meanwhile": "x"})
    repo.find_runs(limit=1)  # the index takes the change in
    assert run.get_tags() == before  # the run's directory changed: read from git as found
    assert run.state.tags == before
    assert "meanwhile" in repo.find_runs("params.p0 = 'adam'", order_by="name")[0].get_tags()


def test_a_change_through_a_found_run_shows_in_its_summary(random_runs):
    repo = random_runs
    run = repo.find_runs(limit=1)[0]
    assert "later" not in run.get_tags()
    run.log_tags({"later": "y"})
    run.rename("renamed-through-found")
    assert run.get_tags()["later"] == "y" and run.name == "renamed-through-found"
    assert repo.get_run(run.id).get_tags() == run.get_tags()



def test_a_key_column_tells_a_null_value_from_no_row(random_runs, value_reads):
    """A metric or attribute read as a column (a ``LEFT JOIN`` each): a NaN metric and a
    null attribute (a row whose value is NULL) come back; a key the run lacks does not."""
    repo = random_runs
    with repo.start_run(name="null-values", code=False, environment=False) as run:
        run.log_metrics({"m0": float("nan"), "m1": 0.5})
        run.log_attributes({"a0": None, "a1": "x"})
    found = repo.find_runs("attributes.run_name = 'null-values'")[0]
    metrics, attributes = found.get_metrics(), found.get_attributes()
    assert vars(found).get("_lazy_state") is None  # from the index, not the record
    assert list(metrics) == ["m0", "m1"] and math.isnan(metrics["m0"]) and metrics["m1"] == 0.5
    assert attributes["a0"] is None and attributes["a1"] == "x" and "a2" not in attributes
    assert same(summary_of(found), summary_of(repo.get_run(found.id)))
    repo.get_run(found.id).delete()  # the other tests' runs as they were


def test_a_found_run_looks_its_summary_up_once(random_runs, monkeypatch):
    """The accessors test the summary kept on the run and look it up only the first time;
    once the state is read, it answers (a class default never hides the run's own)."""
    repo = random_runs
    run = repo.find_runs(limit=1)[0]
    calls = []
    real = search._Batch.summary
    monkeypatch.setattr(search._Batch, "summary", lambda batch, run_id: calls.append(run_id) or real(batch, run_id))
    summary_of(run)
    summary_of(run)
    assert calls == [run.id] and run._active is False
    assert run.state.name == run.name and vars(run)["_lazy_summary"] is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6)


def _summary_with(table: str, value, num=None):
    """The summary of a run whose one ``table`` row (key ``k``) holds ``value``."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(SCHEMA)
    db.execute("INSERT INTO runs(rid, id, tree) VALUES (1, x'01', x'02')")
    db.execute("INSERT INTO keys VALUES (1, ?, 'k', 1)", (table,))
    db.execute(f"INSERT INTO {table} VALUES (1, 1, ?{', ?' if table == 'params' else ''})",
               (value, num) if table == "params" else (value,))
    got = summary.read_summaries(db, [("01", b"\x02", 1)])
    return types.SimpleNamespace(**{part: getattr(got, part)(got.rows["01"])
                                    for part in ("params", "tags", "metrics", "attributes")})


@given(json_values)
def test_a_plain_param_comes_back_from_its_row_exactly(value):
    _, text, num = param_row("k", value)
    if _plain_param(value):
        assert same(_summary_with("params", text, num).params, {"k": value})
    assert not isinstance(value, str) or _plain_param(value)


@given(st.text())
def test_a_tag_comes_back_from_its_row_exactly(value):
    assert _summary_with("tags", value).tags == {"k": value}


@given(st.floats())
def test_a_metric_comes_back_from_its_row_exactly(value):
    if value != 0 or math.copysign(1, value) > 0:  # -0.0 is marked raw
        assert same(_summary_with("metrics", value).metrics, {"k": value})


@given(json_values)
def test_a_plain_attribute_comes_back_from_its_column_exactly(value):
    if _plain_attribute(value):
        assert same(_summary_with("attributes", sql_value(value)).attributes, {"k": value})
    else:
        assert not isinstance(value, str)


@given(st.datetimes(), st.datetimes())
def test_a_time_is_stored_as_an_integer_that_sorts_as_its_text(a, b):
    from gitprov.index.encoding import epoch_ms, time_text, time_value

    texts = [moment.isoformat(timespec="microseconds") + "Z" for moment in (a, b)]
    values = [time_value(text) for text in texts]
    assert all(isinstance(v, int) for v in values)
    assert [time_text(v) for v in values] == texts
    assert (values[0] < values[1]) == (texts[0] < texts[1])
    assert [epoch_ms(v) for v in values] == [epoch_ms(text) for text in texts]
    assert summary.moment(values[0]) == summary.parse_time(texts[0])


@pytest.mark.parametrize("text", ["", "2024-01-01", "2024-01-01T00:00:00Z", "2024-13-01T00:00:00.000000Z",
                                  "2024-01-01T00:00:00.000000+00:00", "２０２４-01-01T00:00:00.000000Z",
                                  "2024-01-01T24:00:00.000000Z", "2024-01-01T23:60:00.000000Z",
                                  "2024-01-01T23:59:60.000000Z", "2023-02-29T00:00:00.000000Z"])
def test_a_time_of_another_form_is_stored_as_its_text(text):
    from gitprov.index.encoding import time_text, time_value

    assert time_value(text) == text and time_text(time_value(text)) == text
