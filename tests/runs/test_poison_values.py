"""Values that cannot be stored are refused where they enter (issue 16): a ``UsageError``
naming the field, nothing half-logged, and the run goes on to end normally with every
point logged before."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

import gitprov
from gitprov.errors import UsageError

from ..conftest import GitRepo

POISON = [
    ("step 2**63", dict(key="loss", value=1.0, step=2**63)),
    ("step -2**63", dict(key="loss", value=1.0, step=-(2**63))),
    ("step 2**62", dict(key="loss", value=1.0, step=2**62)),
    ("timestamp 1e16 s", dict(key="loss", value=1.0, timestamp=1e16)),
    ("timestamp NaN", dict(key="loss", value=1.0, timestamp=math.nan)),
    ("timestamp inf", dict(key="loss", value=1.0, timestamp=math.inf)),
    ("timestamp before 1970", dict(key="loss", value=1.0, timestamp=-5)),
    ("timestamp a string", dict(key="loss", value=1.0, timestamp="yesterday")),
    ("key with a lone surrogate", dict(key="lo\udc80ss", value=1.0)),
    ("value too big for a float", dict(key="loss", value=10**400)),
    ("value a string", dict(key="loss", value="1.0")),
    ("step a float", dict(key="loss", value=1.0, step=1.5)),
]


@pytest.mark.parametrize(("what", "call"), POISON, ids=[p[0] for p in POISON])
def test_a_poison_metric_point_is_refused_and_the_run_ends_with_every_earlier_point(
        prov_repo: GitRepo, what: str, call: dict) -> None:
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="r", code=False, environment=False, spill_points=2) as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        with pytest.raises(UsageError) as err:
            run.log_metric(**call)
        message = str(err.value)
        assert "\n" not in message and ("metric" in message or "step" in message or "timestamp" in message)
        run.log_metric("loss", 0.1, step=5)
        run_id = run.id
    stored = repo.get_run(run_id)
    assert stored.status == "finished"
    assert [p.step for p in stored.get_metric_history("loss")] == [0, 1, 2, 3, 4, 5]
    prov_repo.fsck()


def test_the_largest_accepted_values_round_trip(prov_repo: GitRepo) -> None:
    repo = gitprov.Repository(prov_repo.path)
    late = datetime(9999, 12, 31, tzinfo=timezone.utc)
    with repo.start_run(name="r", code=False, environment=False) as run:
        run.log_metric("loss", 1.0, step=-(2**62) + 1, timestamp=0)
        run.log_metric("loss", 2.0, step=2**62 - 1, timestamp=late)
        run_id = run.id
    history = repo.get_run(run_id).get_metric_history("loss")
    assert [p.step for p in history] == [-(2**62) + 1, 2**62 - 1]
    assert history[1].timestamp == int(late.timestamp() * 1000)


@pytest.mark.parametrize("call", [
    lambda run: run.log_hyperparameter("lr", "x\udc80"),
    lambda run: run.log_hyperparameter("l\udc80r", 1),
    lambda run: run.log_tags({"t": "x\udc80"}),
    lambda run: run.rename("x\udc80"),
])
def test_lone_surrogates_in_text_are_refused_by_name(prov_repo: GitRepo, call) -> None:
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="r", code=False, environment=False) as run:
        with pytest.raises(UsageError, match="lone surrogate"):
            call(run)
        run_id = run.id
    assert repo.get_run(run_id).status == "finished"
    with pytest.raises(UsageError, match="lone surrogate"):
        repo.start_run(name="r\udc80", code=False, environment=False)


def test_a_default_step_past_the_limit_is_refused_too(prov_repo: GitRepo) -> None:
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="r", code=False, environment=False) as run:
        run.log_metric("loss", 1.0, step=-(2**62) + 1)
        run.log_metric("loss", 1.0, step=2**62 - 1)
        with pytest.raises(UsageError, match="next step"):
            run.log_metric("loss", 1.0)
        run.log_metric("loss", 1.0, step=0)
        run_id = run.id
    assert len(repo.get_run(run_id).get_metric_history("loss")) == 3


@pytest.mark.parametrize("text", ["typo.csv", "data/train.parquet", "./x", "../data"])
def test_a_dataset_path_that_does_not_exist_is_refused(prov_repo: GitRepo, text: str) -> None:
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="r", code=False, environment=False) as run:
        with pytest.raises(UsageError, match="does not exist"):
            run.log_dataset_version("train", text)
        assert run.get_dataset_versions() == {}


@pytest.mark.parametrize("text", ["sha256:" + "ab" * 32, "md5:0123abcd", "mnist:v3", "s3://bucket/train.csv?versionId=7",
                                  "hf://datasets/x/y@main", "v1.2", "0123456789abcdef0123456789abcdef"])
def test_digests_versions_and_uris_are_kept_as_given(prov_repo: GitRepo, text: str) -> None:
    repo = gitprov.Repository(prov_repo.path)
    with repo.start_run(name="r", code=False, environment=False) as run:
        assert run.log_dataset_version("train", text).digest == text
