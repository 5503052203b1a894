"""``prov lineage``: what fed a run or model, and what it fed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository

__all__ = ["lineage_command"]


@click.command("lineage")
@click.argument("target", metavar="RUN | MODEL[@VERSION] | ARTIFACT | NODE")
@click.option("--upstream", "direction", flag_value="upstream", help="Only what TARGET was made from.")
@click.option("--downstream", "direction", flag_value="downstream", help="Only what was made from TARGET.")
@click.option("--depth", type=click.IntRange(min=0), help="Follow at most N edges (default: all).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot", "mermaid"]), default="text",
              show_default=True, help="Output format (dot for Graphviz, mermaid for Markdown).")
@with_repository()
def lineage_command(target: str, direction: str | None, depth: int | None, fmt: str, repo: Repository) -> None:
    """Show the lineage graph around TARGET: runs, models, datasets and artifacts.

    TARGET is a run id or unique prefix, a model name (every version) or NAME@VERSION,
    an artifact RUN/PATH, or a node id: run:ID, model:NAME@VERSION, dataset:KEY@DIGEST,
    artifact:RUN/PATH.
    Cycles are reported (a "cycle:" line, the JSON "cycles" list, a warning on
    stderr for dot and mermaid), never followed.
    """
    from .render import echo_lines

    graph = repo.lineage(target, direction or "both", depth)
    echo_lines(graph.lines(fmt))
    if graph.cycles and fmt in ("dot", "mermaid"):
        click.echo(f"prov: warning: {len(graph.cycles)} cycle(s) in this lineage graph", err=True)
