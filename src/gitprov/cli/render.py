"""Readable and JSON renderings shared by every CLI path (imports no click)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

__all__ = ["echo_lines", "emit_json", "emit_json_array", "emit_json_with", "emit_show_json", "print_show", "show_lines", "render_log", "render_show"]


def emit_json(obj: Any) -> None:
    """Print ``obj`` as one JSON document (sorted keys, tagged non-finite floats)."""
    import msgspec

    from .. import codec

    text = msgspec.json.encode(codec.to_output(obj), order="sorted")
    sys.stdout.write(msgspec.json.format(text, indent=2).decode("utf-8") + "\n")


def emit_json_array(items: Iterable[Any]) -> None:
    """Print ``items`` as one JSON array, the same text as ``emit_json(list(items))``,
    each item written (and flushed) as it comes."""
    import msgspec

    from .. import codec

    out = sys.stdout
    opening = "[\n  "
    for item in items:
        # an item's own lines, indented one level: JSON strings hold no raw newline
        text = msgspec.json.encode(codec.to_output(item), order="sorted")
        out.write(opening + msgspec.json.format(text, indent=2).decode("utf-8").replace("\n", "\n  "))
        out.flush()
        opening = ",\n  "
    out.write("[]\n" if opening == "[\n  " else "\n]\n")


def emit_json_with(doc: dict[str, Any], key: str, items: Iterable[Any]) -> None:
    """Print ``doc`` with ``doc[key]`` = the list of ``items``, the same text as
    ``emit_json``, each item written as it comes (never the whole list in memory)."""
    import msgspec

    from .. import codec

    items = iter(items)
    first = next(items, _END)
    if first is _END:
        emit_json({**doc, key: []})
        return
    mark = "\x00items\x00"
    text = msgspec.json.encode(codec.to_output({**doc, key: [mark]}), order="sorted")
    head, _, tail = msgspec.json.format(text, indent=2).decode("utf-8").partition(msgspec.json.encode(mark).decode())
    out = sys.stdout
    out.write(head)
    for i, item in enumerate(chain([first], items)):
        # an item's own lines, indented to its place: JSON strings hold no raw newline
        pad = "\n" + head[head.rindex("\n") + 1:]
        item_text = msgspec.json.format(msgspec.json.encode(codec.to_output(item), order="sorted"), indent=2)
        out.write(("," + pad if i else "") + item_text.decode("utf-8").replace("\n", pad))
    out.write(tail + "\n")


_END = object()


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_show(prov: Any, has_notes: bool = True) -> str:
    """``prov show`` as text; ``has_notes`` False: this clone has no ``refs/notes/prov``
    but a remote that may have it."""
    return "\n".join(show_lines(prov, has_notes))


def print_show(repo: Any, rev: str, as_json: bool) -> None:
    """``prov show REV [--json]``: the commit first, then its runs as they are read
    back, never all held (``Repository.show(lazy=True)``); problems on stderr."""
    has_notes = repo.notes.tip() is not None or not repo.git.config.remote_names()
    prov = repo.show(rev, lazy=True)
    try:
        if as_json:
            emit_show_json(prov)
        else:
            echo_lines(show_lines(prov, has_notes))
    finally:
        prov.runs.close()
    warn_problems([prov])


def emit_show_json(prov: Any) -> None:
    """``prov show --json``: the text of ``emit_json(prov)``, the runs written as they
    are read back (``prov.runs`` may be a ``provenance.ListedRuns``)."""
    import msgspec

    from .. import codec

    len(prov.runs)  # read them: the problems, which come first, are known then
    emit_json_with(codec.to_output(msgspec.structs.replace(prov, runs=[])), "runs", iter(prov.runs))


def echo_lines(lines: Iterable[str], flushed: int = 8) -> None:
    """Print each line as it is made, the first ``flushed`` at once (what is known before
    a long read shows before it), the rest through the stream's buffer."""
    out = sys.stdout
    for i, line in enumerate(lines):
        out.write(line + "\n")
        if i < flushed:
            out.flush()
    out.flush()


def show_lines(prov: Any, has_notes: bool = True) -> Iterator[str]:
    """``render_show`` line by line: the commit first, the runs as they are iterated."""
    yield f"commit {prov.commit}"
    yield f"    {prov.summary}"
    yield ""
    len(prov.runs)  # read now: the schema line may name a run's pin
    if not prov.has_provenance and not has_notes:
        yield ("no provenance in this clone yet (no refs/notes/prov: a fresh clone or a CI checkout?); "
               "fetch it with: prov pull")
        return
    if not prov.has_provenance:
        yield f"no provenance recorded for this commit (record it with: prov capture {prov.commit[:12]})"
        return
    yield f"schema   {prov.schema}"
    lines: list[str] = []
    for cap in prov.captures:
        env = cap.environment
        lines += [
            "",
            f"capture  {cap.captured_at}  {cap.tool}  ({cap.trigger})"
            + (f"  copied from {cap.commit[:12]}" if cap.commit != prov.commit else ""),
            f"  python     {env.python_implementation} {env.python_version} on {env.platform} {env.machine}",
            f"  packages   {env.distributions_count} installed, {env.distributions_digest[:19]}…",
        ]
        for path, blob in env.lockfiles.items():
            lines.append(f"  lockfile   {path}  blob {blob[:12]}")
        for item in cap.inputs:
            lines.append(f"  input      {item.path}  sha256:{item.sha256[:12]}…  {_size(item.size)}")
        for key, value in cap.ci.items():
            lines.append(f"  ci         {key}={value}")
    yield from lines
    lines = []
    if prov.runs:
        yield ""
        yield f"runs ({len(prov.runs)})"
        for run in prov.runs:
            label = " ".join(x for x in (run.name, f"[{run.experiment}]" if run.experiment else "") if x)
            yield f"  {run.run[:12]}  {run.created}  {label}".rstrip()
    if prov.rewrites:
        lines += ["", "rewrites"]
        for link in prov.rewrites:
            if link.new == prov.commit:
                lines.append(f"  replaces {link.old[:12]} ({link.how})")
            elif link.old == prov.commit:
                lines.append(f"  replaced by {link.new[:12]} ({link.how})")
            else:  # inherited from an earlier rewrite of an ancestor version
                lines.append(f"  earlier   {link.old[:12]} -> {link.new[:12]} ({link.how})")
    yield from lines


def render_log(entries: list[Any]) -> str:
    out = []
    for prov in entries:
        captured = "captured" if prov.captures else "-       "
        runs = f"{len(prov.runs)} run{'s' if len(prov.runs) != 1 else ''}" if prov.runs else "       "
        out.append(f"{prov.commit[:12]}  {captured}  {runs:7}  {prov.summary}")
    return "\n".join(out) if out else "no commits in range"


def warn_problems(entries: list[Any]) -> None:
    """Print, on stderr, what each commit's provenance had to leave out."""
    import sys

    for prov in entries:
        for problem in prov.problems:
            print(f"prov: warning: {problem}", file=sys.stderr)


def capture_message(commit: str, created: bool) -> str:
    if created:
        return f"captured provenance of {commit[:12]}"
    return f"{commit[:12]} already has a capture (use --force to add another)"


def short(value: Any, width: int = 24) -> str:
    import msgspec

    from .. import codec
    from ..scrub import REDACTION_FIELD, is_redaction

    if isinstance(value, float):
        text = repr(value)
    elif is_redaction(value):  # a secret hyperparameter: its keyed digest, for comparing
        text = "[redacted] " + value[REDACTION_FIELD]
    else:
        text = value if isinstance(value, str) else msgspec.json.encode(codec.to_plain(value)).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def render_run(run: Any) -> str:
    rec, st = run.record, run.state
    code = rec.code
    lines = [
        f"run        {run.id}",
        f"name       {st.name}" + (f"  [{st.experiment}]" if st.experiment else ""),
        f"status     {st.status}" + (f" (exit {st.exit_code})" if st.exit_code is not None else "")
        + ("  DELETED" if st.deleted else ""),
        f"created    {rec.created}" + (f"   ended {st.ended}" if st.ended else ""),
        f"code       {code.commit or '(no commit)'}" + ("  + uncommitted changes" if code.is_dirty else "")
        + (f"  {code.exec_path}" if code.exec_path else ""),
    ]
    if code.repo_url:
        lines.append(f"repo       {code.repo_url}")
    if rec.command:
        lines.append(f"command    {' '.join(rec.command)}")
    if rec.parent:
        lines.append(f"parent     {rec.parent}")
    if rec.reproduces:
        lines.append(f"reproduces {rec.reproduces}")
    from ..runs.rerun import rerunnable

    why = rerunnable(rec)
    lines.append(f"rerun      {'cannot: ' + why if why else 'prov rerun ' + run.id[:12]}")
    sections = [
        ("params", run.get_hyperparameters()),
        ("metrics", {k: f"{m.value:.6g} (step {m.step})" for k, m in sorted(st.metrics.items())}),
        ("tags", st.tags),
        ("attributes", st.attributes),
        ("datasets", {k: f"{d.digest}" + (f"  {d.path}" if d.path else "") for k, d in st.datasets.items()}),
        ("artifacts", {k: f"{_size(a.size)}  {a.media_type}  sha256:{a.sha256[:12]}…  ({a.location})" for k, a in st.artifacts.items()}),
        ("observations", {k: f"{n} epoch(s)" for k, n in st.observations.items()}),
    ]
    for title, items in sections:
        if items:
            lines += ["", title]
            lines += [f"  {k:28} {v if isinstance(v, str) else short(v, 60)}" for k, v in sorted(items.items())]
    if rec.environment:
        env = rec.environment
        lines += ["", f"environment  {env.python_implementation} {env.python_version} on {env.platform} {env.machine}, "
                  f"{env.distributions_count} packages ({env.distributions_digest[:19]}…)"]
    return "\n".join(lines)


def diff_runs(a: Any, b: Any) -> list[dict[str, Any]]:
    """Rows ``{section, key, a, b}`` for every value that differs between two runs."""
    def env_view(run: Any) -> dict[str, Any]:
        env = run.record.environment
        if env is None:
            return {}
        view = {"python": f"{env.python_implementation} {env.python_version}", "platform": f"{env.platform} {env.machine}",
                "distributions": env.distributions_digest}
        if a.record.packages is not None and b.record.packages is not None:
            del view["distributions"]  # each package instead
            view.update({f"package {name}": version for name, _, version in
                         (item.partition("==") for item in run.record.packages.splitlines())})
        view.update({f"lockfile {k}": v for k, v in env.lockfiles.items()})
        return view

    views = [
        ("params", lambda r: r.get_hyperparameters()),
        ("metrics", lambda r: {k: m.value for k, m in r.state.metrics.items()}),
        ("code", lambda r: {"commit": r.record.code.commit, "dirty": r.record.code.is_dirty, "patch": r.record.code.patch}),
        ("data", lambda r: {k: d.digest for k, d in r.state.datasets.items()}),
        ("artifacts", lambda r: {k: x.sha256 for k, x in r.state.artifacts.items()}),
        ("environment", env_view),
    ]
    rows = []
    for section, view in views:
        va, vb = view(a), view(b)
        for key in sorted(set(va) | set(vb)):
            x, y = va.get(key), vb.get(key)
            same = x == y or (isinstance(x, float) and isinstance(y, float) and x != x and y != y)
            if not same:
                rows.append({"section": section, "key": key, "a": x, "b": y})
    return rows
