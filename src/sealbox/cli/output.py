"""Tables for people, JSON for machines (`--output json`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

OUTPUT_OPTION = click.option(
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts",
)


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[str], output: str) -> None:
    if output == "json":
        click.echo(json.dumps(list(rows), indent=2, default=str))
        return
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip())
