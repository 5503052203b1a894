"""``prov export``: runs and their lineage as W3C PROV, OpenLineage or in-toto/SLSA."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from .options import with_repository

if TYPE_CHECKING:
    from ..api import Repository

__all__ = ["export_command"]

_FORMATS = ("prov-json", "prov-n", "prov-o", "openlineage", "in-toto")


def _check(params: dict[str, Any]) -> None:
    from ..errors import UsageError
    from ..exports import check_format

    if params["fmt"] is None:
        raise UsageError(f"prov export needs --format, one of: {', '.join(_FORMATS)}")
    check_format(params["fmt"], sign=params["sign"], url=params["url"], namespace=params["namespace"])


@click.command("export")
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option("--format", "fmt", type=click.Choice(_FORMATS),
              help="prov-json, prov-n, prov-o (W3C PROV: JSON, PROV-N, Turtle), openlineage (RunEvents, "
                   "JSON Lines) or in-toto (SLSA provenance statements, JSON Lines).")
@click.option("--where", metavar="FILTER", help="Only runs matching this filter (as prov runs --where).")
@click.option("--upstream", is_flag=True, help="Also every run upstream of the TARGETs.")
@click.option("-o", "--output", "output", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write to FILE (whole or not at all) instead of standard output.")
@click.option("--sign", is_flag=True, help="in-toto: wrap each statement in a DSSE envelope signed with your "
                                           "ssh key (gpg.format=ssh, user.signingKey).")
@click.option("--url", metavar="URL", help="openlineage: also send the events to this endpoint "
                                           "(Marquez: http://HOST:5000, posted to /api/v1/lineage).")
@click.option("--namespace", metavar="NAME", help="openlineage: the namespace of the jobs and datasets "
                                                  "(default git-prov; one per repository keeps them apart).")
@with_repository(before=_check)
def export_command(targets: tuple[str, ...], fmt: str, where: str | None, upstream: bool, output: str | None,
                   sign: bool, url: str | None, namespace: str | None, repo: Repository) -> None:
    """Export runs and their lineage in a provenance standard's format.

    TARGETs are run ids or prefixes, models (MODEL[@VERSION]), artifacts (RUN/PATH)
    or node ids (dataset:KEY@DIGEST): a run exports itself, anything else the runs
    that produced it; --upstream adds everything upstream. Without TARGET, every
    run (matching --where). The same provenance always gives the same bytes.
    """
    options: dict = {"upstream": upstream, "sign": sign, "url": url, "namespace": namespace}
    if output is None:
        repo.export(fmt, list(targets), where, output=sys.stdout.buffer, **options)
        sys.stdout.buffer.flush()
        return
    import os

    from .._util.paths import replacing_file
    from ..errors import WriteError

    try:
        with replacing_file(os.path.abspath(output)) as f:  # whole or not at all
            repo.export(fmt, list(targets), where, output=f, **options)
    except OSError as exc:
        raise WriteError(f"cannot write {output}: {exc.strerror or exc}; choose another -o FILE") from exc
