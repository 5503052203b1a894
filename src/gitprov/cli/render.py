"""Readable and JSON renderings shared by every CLI path (imports no click)."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from .. import codec

__all__ = ["emit_json", "render_log", "render_show"]


def emit_json(obj: Any) -> None:
    """Print ``obj`` as one JSON document (sorted keys, tagged non-finite floats)."""
    sys.stdout.write(msgspec.json.format(codec.encode(obj), indent=2).decode("utf-8") + "\n")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render_show(prov: Any) -> str:
    lines = [f"commit {prov.commit}", f"    {prov.summary}", ""]
    if not prov.has_provenance:
        lines.append(
            f"no provenance recorded for this commit (record it with: prov capture {prov.commit[:12]})"
        )
        return "\n".join(lines)
    lines.append(f"schema   {prov.schema}")
    for cap in prov.captures:
        env = cap.environment
        lines += [
            "",
            f"capture  {cap.captured_at}  {cap.tool}  ({cap.trigger})",
            f"  python     {env.python_implementation} {env.python_version} on {env.platform} {env.machine}",
            f"  packages   {env.distributions_count} installed, {env.distributions_digest[:19]}…",
        ]
        for path, blob in env.lockfiles.items():
            lines.append(f"  lockfile   {path}  blob {blob[:12]}")
        for item in cap.inputs:
            lines.append(f"  input      {item.path}  sha256:{item.sha256[:12]}…  {_size(item.size)}")
        for key, value in cap.ci.items():
            lines.append(f"  ci         {key}={value}")
    if prov.runs:
        lines += ["", f"runs ({len(prov.runs)})"]
        for run in prov.runs:
            label = " ".join(x for x in (run.name, f"[{run.experiment}]" if run.experiment else "") if x)
            lines.append(f"  {run.run[:12]}  {run.created}  {label}".rstrip())
    if prov.rewrites:
        lines += ["", "rewrites"]
        for link in prov.rewrites:
            if link.new == prov.commit:
                lines.append(f"  replaces {link.old[:12]} ({link.how})")
            else:
                lines.append(f"  replaced by {link.new[:12]} ({link.how})")
    return "\n".join(lines)


def render_log(entries: list[Any]) -> str:
    out = []
    for prov in entries:
        captured = "captured" if prov.captures else "-       "
        runs = f"{len(prov.runs)} run{'s' if len(prov.runs) != 1 else ''}" if prov.runs else "       "
        out.append(f"{prov.commit[:12]}  {captured}  {runs:7}  {prov.summary}")
    return "\n".join(out) if out else "no commits in range"


def capture_message(result: Any) -> str:
    short = result.commit[:12]
    if result.created:
        return f"captured provenance of {short}"
    return f"{short} already has a capture (use --force to add another)"
