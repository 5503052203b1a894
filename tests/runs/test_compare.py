"""The cause analysis shared by ``prov rerun`` and ``prov runs diff``: tolerances,
result rows, verdicts, package differences and the seed suggestion."""

from __future__ import annotations

import math

from gitprov.model import (
    ArtifactRef,
    CodeVersion,
    DatasetVersion,
    MetricSummary,
    RunRecord,
    RunState,
)
from gitprov.model.capture import Environment
from gitprov.runs import compare
from gitprov.schema import current_pin


def _state(**metrics: float) -> RunState:
    return RunState(status="finished", exit_code=0,
                    metrics={k: MetricSummary(value=v, step=0, timestamp=0) for k, v in metrics.items()})


def test_tolerances_default_and_per_metric() -> None:
    tol = compare.Tolerance(rtol=1e-3, atol=0.0, per_rtol={"loss": 0.0}, per_atol={"loss": 0.01})
    assert tol.close("acc", 1.0, 1.0009) and not tol.close("acc", 1.0, 1.002)
    assert tol.close("loss", 0.5, 0.509) and not tol.close("loss", 0.5, 0.52)
    assert tol.close("x", math.nan, math.nan) and not tol.close("x", math.nan, 1.0)
    assert tol.close("x", math.inf, math.inf) and not tol.close("x", math.inf, 1e308)


def test_results_and_verdicts() -> None:
    a, b = _state(loss=0.5, acc=0.9), _state(loss=0.5, acc=0.9000001)
    rows = compare.result_changes(a, b)
    assert compare.verdict(rows) == compare.DRIFTED
    rows = compare.result_changes(a, b, compare.Tolerance(rtol=1e-6))
    assert {r["key"]: r["status"] for r in rows if r["kind"] == "metric"} == {"acc": "within tolerance",
                                                                               "loss": "identical"}
    assert compare.verdict(rows) == compare.WITHIN
    assert compare.verdict(compare.result_changes(a, _state(loss=0.5, acc=0.9))) == compare.IDENTICAL
    # a metric only one side has, another artifact, another output, another exit code: drifted
    b = _state(loss=0.5, acc=0.9, extra=1.0)
    b.artifacts["model"] = ArtifactRef(key="model", sha256="1" * 64, size=1)
    b.datasets["output/out.txt"] = DatasetVersion(key="output/out.txt", digest="sha256:" + "2" * 64)
    b.exit_code = 3
    drifted = {(r["kind"], r["key"]) for r in compare.result_changes(a, b) if r["status"] == compare.DRIFTED}
    assert drifted == {("metric", "extra"), ("artifact", "model"), ("output", "out.txt"), ("exit", "exit code")}


def _record(packages: str | None, python: str = "3.11.7") -> RunRecord:
    env = Environment(python_implementation="cpython", python_version=python, platform="linux", machine="x86_64",
                      distributions_digest="sha256:" + ("a" if packages else "b") * 64, distributions_count=2)
    return RunRecord(created="", nonce="", code=CodeVersion(commit="c" * 40), environment=env, packages=packages,
                     schema=current_pin())


def test_each_package_that_differs_is_named_with_both_versions() -> None:
    a = _record("numpy==1.26.4\nprovtoy==1.0\nrich==13.0")
    b = _record("numpy==2.0.1\nprovtoy==1.0\ntorch==2.3", python="3.12.1")
    assert compare.environment_changes(a, b) == [
        {"what": "python", "a": "cpython 3.11.7", "b": "cpython 3.12.1"},
        {"what": "package numpy", "a": "1.26.4", "b": "2.0.1"},
        {"what": "package rich", "a": "13.0", "b": None},
        {"what": "package torch", "a": None, "b": "2.3"},
    ]
    # an older record holds only the digest: the package sets differ, no names
    rows = compare.environment_changes(_record(None), b)
    assert [r["what"] for r in rows] == ["python", "packages"]


def test_causes_and_the_seed_suggestion() -> None:
    assert compare.causes(code=[], data=[], environment=[], params=[]) == ["nondeterminism"]
    assert compare.causes(code=[1], data=[], environment=[1], params=[]) == ["code", "environment"]
    unseeded = compare.seed_suggestion({"random": "state:1", "numpy.random@end": "state:2"},
                                       {"random": "state:3", "numpy.random@end": "state:4"})
    assert "numpy.random, random" in unseeded and "log_seed" in unseeded
    assert "no seeds were recorded" in compare.seed_suggestion({}, {})
    same = compare.seed_suggestion({"seed": 7, "random": "state:1"}, {"seed": 7, "random": "state:1"})
    assert "are the same" in same
