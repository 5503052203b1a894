"""Why two runs differ: code, data, environment, params, and their results.

Shared by ``prov rerun`` (a run against its re-execution) and ``prov runs diff`` (any
two runs). Results are compared value by value: metrics with a tolerance (``rtol``,
``atol``, per metric if given, as ``numpy.isclose``: ``|a - b| <= atol + rtol * |a|``),
artifacts and outputs by digest, the exit code and status exactly. When results drift,
the causes are named from what else differs; with the same code, data and environment,
the drift is nondeterminism.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..model import RunRecord, RunState

__all__ = [
    "IDENTICAL",
    "WITHIN",
    "DRIFTED",
    "Tolerance",
    "causes",
    "code_changes",
    "data_changes",
    "environment_changes",
    "explain",
    "package_changes",
    "param_changes",
    "result_changes",
    "seed_suggestion",
    "verdict",
]

IDENTICAL, WITHIN, DRIFTED = "identical", "within tolerance", "drifted"
#: dataset keys of files a run wrote (``prov run --output``): results, not inputs
OUTPUT_PREFIX = "output/"


class Tolerance:
    """``rtol``/``atol`` for metrics: a default, and per-metric values by key."""

    def __init__(self, rtol: float = 0.0, atol: float = 0.0, per_rtol: Mapping[str, float] | None = None,
                 per_atol: Mapping[str, float] | None = None) -> None:
        self.rtol, self.atol = rtol, atol
        self.per_rtol, self.per_atol = dict(per_rtol or {}), dict(per_atol or {})

    def close(self, key: str, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        rtol, atol = self.per_rtol.get(key, self.rtol), self.per_atol.get(key, self.atol)
        return abs(a - b) <= atol + rtol * abs(a)


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _name_version(item: str) -> tuple[str, str]:
    name, _, version = item.partition("==")
    return name, version


def package_changes(a: str | None, b: str | None) -> list[dict[str, Any]]:
    """``{"package", "a", "b"}`` for each distribution whose version differs (None:
    not installed on that side), from two records' ``packages``; empty when either
    list was not recorded."""
    if a is None or b is None:
        return []
    va, vb = dict(map(_name_version, a.splitlines())), dict(map(_name_version, b.splitlines()))
    return [{"package": name, "a": va.get(name), "b": vb.get(name)}
            for name in sorted(set(va) | set(vb)) if va.get(name) != vb.get(name)]


def environment_changes(a: RunRecord, b: RunRecord) -> list[dict[str, Any]]:
    """``{"what", "a", "b"}`` rows: python, platform, then each package (or the
    digest of the package set when a record holds no list)."""
    ea, eb = a.environment, b.environment
    if ea is None or eb is None:
        return [] if ea is eb else [{"what": "environment", "a": ea is not None and "recorded" or None,
                                     "b": eb is not None and "recorded" or None}]
    rows = []
    for what, x, y in (("python", f"{ea.python_implementation} {ea.python_version}",
                        f"{eb.python_implementation} {eb.python_version}"),
                       ("platform", f"{ea.platform} {ea.machine}", f"{eb.platform} {eb.machine}")):
        if x != y:
            rows.append({"what": what, "a": x, "b": y})
    packages = package_changes(a.packages, b.packages)
    rows += [{"what": f"package {p['package']}", "a": p["a"], "b": p["b"]} for p in packages]
    if not packages and ea.distributions_digest != eb.distributions_digest:
        rows.append({"what": "packages", "a": f"{ea.distributions_count} ({ea.distributions_digest[:19]}…)",
                     "b": f"{eb.distributions_count} ({eb.distributions_digest[:19]}…)"})
    for name in sorted(set(ea.lockfiles) | set(eb.lockfiles)):
        if ea.lockfiles.get(name) != eb.lockfiles.get(name):
            rows.append({"what": f"lockfile {name}", "a": ea.lockfiles.get(name), "b": eb.lockfiles.get(name)})
    return rows


def code_changes(a: RunRecord, b: RunRecord) -> list[dict[str, Any]]:
    """The commit and the uncommitted patch (blob id), when they differ."""
    rows = []
    if a.code.commit != b.code.commit:
        rows.append({"what": "commit", "a": a.code.commit, "b": b.code.commit})
    if a.code.patch != b.code.patch or a.code.is_dirty != b.code.is_dirty:
        rows.append({"what": "uncommitted patch", "a": a.code.patch, "b": b.code.patch})
    return rows


def data_changes(a: RunState, b: RunState) -> list[dict[str, Any]]:
    """Input datasets whose digest differs (outputs are results)."""
    da = {k: d.digest for k, d in a.datasets.items() if not k.startswith(OUTPUT_PREFIX)}
    db = {k: d.digest for k, d in b.datasets.items() if not k.startswith(OUTPUT_PREFIX)}
    return [{"what": k, "a": da.get(k), "b": db.get(k)} for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)]


def param_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"what": k, "a": a.get(k), "b": b.get(k)} for k in sorted(set(a) | set(b)) if not _same(a.get(k), b.get(k))]


def result_changes(a: RunState, b: RunState, tolerance: Tolerance | None = None) -> list[dict[str, Any]]:
    """Every result of either run: ``{"kind", "key", "a", "b", "status"}`` with status
    identical, within tolerance or drifted (metrics by value, artifacts and outputs by
    digest, status and exit code exactly)."""
    tolerance = tolerance or Tolerance()
    rows = []

    def add(kind: str, key: str, x: Any, y: Any, status: str | None = None) -> None:
        rows.append({"kind": kind, "key": key, "a": x, "b": y,
                     "status": status or (IDENTICAL if _same(x, y) else DRIFTED)})

    add("exit", "status", a.status, b.status)
    add("exit", "exit code", a.exit_code, b.exit_code)
    ma, mb = {k: m.value for k, m in a.metrics.items()}, {k: m.value for k, m in b.metrics.items()}
    for key in sorted(set(ma) | set(mb)):
        x, y = ma.get(key), mb.get(key)
        if x is None or y is None or _same(x, y):
            add("metric", key, x, y)
        else:
            add("metric", key, x, y, WITHIN if tolerance.close(key, x, y) else DRIFTED)
    aa, ab = {k: r.sha256 for k, r in a.artifacts.items()}, {k: r.sha256 for k, r in b.artifacts.items()}
    for key in sorted(set(aa) | set(ab)):
        add("artifact", key, aa.get(key), ab.get(key))
    oa = {k: d.digest for k, d in a.datasets.items() if k.startswith(OUTPUT_PREFIX)}
    ob = {k: d.digest for k, d in b.datasets.items() if k.startswith(OUTPUT_PREFIX)}
    for key in sorted(set(oa) | set(ob)):
        add("output", key[len(OUTPUT_PREFIX):], oa.get(key), ob.get(key))
    return rows


def verdict(results: list[dict[str, Any]]) -> str:
    statuses = {r["status"] for r in results}
    return DRIFTED if DRIFTED in statuses else WITHIN if WITHIN in statuses else IDENTICAL


def causes(*, code: list, data: list, environment: list, params: list) -> list[str]:
    """What can explain drifted results: each kind of difference found, or
    nondeterminism when code, data, environment and params are the same."""
    found = [name for name, rows in (("code", code), ("data", data), ("environment", environment),
                                     ("params", params)) if rows]
    return found or ["nondeterminism"]


def seed_suggestion(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """What to do about nondeterminism, from the seeds and generator states recorded."""
    unseeded = sorted({k.removesuffix("@end") for k in set(a) | set(b)
                       if str(a.get(k, "")).startswith("state:") and a.get(k) != b.get(k)})
    if unseeded:
        return (f"the random generators {', '.join(unseeded)} started from different states: seed them "
                "(random.seed, numpy.random.seed, torch.manual_seed) and record the seed with run.log_seed(seed)")
    if not a and not b:
        return ("no seeds were recorded: seed every random generator the command uses and record the seed with "
                "run.log_seed(seed); look for clocks, threads and unordered iteration too")
    return ("the recorded seeds and generator states are the same: look for clocks, threads, unordered iteration "
            "or nondeterministic kernels (torch.use_deterministic_algorithms)")


def explain(a: Any, b: Any, tolerance: Tolerance | None = None) -> dict[str, Any]:
    """The cause analysis of two stored runs (``Run``): what differs in code, data,
    environment and params, the results compared, the verdict and its causes."""
    report: dict[str, Any] = {
        "code": code_changes(a.record, b.record),
        "data": data_changes(a.state, b.state),
        "environment": environment_changes(a.record, b.record),
        "params": param_changes(a.get_hyperparameters(), b.get_hyperparameters()),
        "results": result_changes(a.state, b.state, tolerance),
    }
    report["verdict"] = verdict(report["results"])
    report["causes"] = causes(code=report["code"], data=report["data"], environment=report["environment"],
                              params=report["params"]) if report["verdict"] == DRIFTED else []
    report["suggestion"] = seed_suggestion(a.get_seeds(), b.get_seeds()) \
        if report["causes"] == ["nondeterminism"] else None
    return report
