"""`neurcodec models` and `neurcodec pull NAME`: list the registry, fetch Hub weights."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from neurcodec import zoo
from neurcodec.cli import app


def _human_size(n: int | None, exact: bool) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return text if exact else f"~{text}"
        value /= 1000
    return str(n)


def _human_count(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    return f"{n / 1e3:.1f} k"


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON on stdout.")] = False,
) -> None:
    """List model families: parameters, size, licence, and where they are (bundled/cached/remote)."""
    rows = []
    default = zoo.default_family()
    for spec in zoo.list_families():
        size, exact = zoo.file_sizes(spec)
        has_clip = not spec.clip.from_text_encoder or zoo.clip_cache_path(spec).is_file()
        rows.append(
            {
                "name": spec.name,
                "default": spec.name == default,
                "where": zoo.where(spec),
                "parameters": zoo.parameter_count(spec),
                "size_bytes": size,
                "size_exact": exact,
                "licence": spec.licence,
                "licence_url": spec.licence_url,
                "licence_note": spec.licence_note,
                "clip_vector": has_clip,
                "digest": zoo.weights_digest(spec).hex(),
                "description": spec.description,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="neurcodec models")
    for col in ("name", "parameters", "size", "licence", "where"):
        table.add_column(col, overflow="fold")
    for row in rows:
        where = row["where"]
        if where == "cached" and not row["clip_vector"]:
            where += " (no CLIP vector: pull again)"
        table.add_row(
            row["name"] + (" (default)" if row["default"] else ""),
            _human_count(row["parameters"]),
            _human_size(row["size_bytes"], row["size_exact"]),
            row["licence"],
            where,
        )
    Console().print(table)


@app.command()
def pull(
    name: Annotated[str, typer.Argument(help="Model family, e.g. stable-cascade-lite.")],
    force: Annotated[bool, typer.Option("--force", help="Fetch again and recompute the CLIP vector.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fetched paths as JSON on stdout.")] = False,
) -> None:
    """Download a model's weights into the Hugging Face cache and prepare it for decoding."""
    err = Console(stderr=True)
    spec = zoo.get_family(name)
    # Progress only on a terminal (step lines from rich, byte bars from huggingface_hub), so a
    # failure in a script is exactly one line.
    on_step = (lambda msg: err.print(f"{spec.name}: {msg}")) if err.is_terminal else None
    result = zoo.pull(spec, progress=err.is_terminal, force=force, on_step=on_step)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "name": result.family,
                    "files": {k: str(v) for k, v in result.files.items()},
                    "clip_vector": str(result.clip_path) if result.clip_path else None,
                    "clip_computed": result.clip_computed,
                },
                indent=2,
            )
        )
    else:
        licence = f"; weights under the {spec.licence}" + (f" ({spec.licence_url})" if spec.licence_url else "")
        err.print(f"{spec.name}: ready ({zoo.where(spec)}){licence}")
