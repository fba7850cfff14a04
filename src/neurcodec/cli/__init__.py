"""The `neurcodec` command: a thin Typer layer over the Python API.

Each command group lives in its own module and registers itself on `app`;
this module only wires them together and maps errors to exit codes.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from neurcodec.errors import NeurcodecError

app = typer.Typer(
    name="neurcodec",
    help="Neural image and video codec: a diffusion autoencoder that samples what it can't compress.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """Neural image and video codec: a diffusion autoencoder that samples what it can't compress.

    Use --debug (anywhere) to see a traceback instead of the one-line error.
    """
    if version:
        from neurcodec import __version__

        print(f"neurcodec {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit(0)


# Imported for their side effect of adding commands to `app`.
from neurcodec.cli import bench_cmd, codec_cmd, dataset_cmd, models_cmd, train_cmd  # noqa: E402, F401


def main() -> None:
    """Console-script entry point: run the app, turn NeurcodecError into one line + exit code."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        # In non-standalone mode Typer returns (not raises) 130 on Ctrl-C and typer.Exit codes.
        rc = app(standalone_mode=False)
        if rc == 130:
            print("neurcodec: interrupted", file=sys.stderr)
        raise SystemExit(rc if isinstance(rc, int) else 0)
    except NeurcodecError as exc:
        if debug or os.environ.get("NEURCODEC_DEBUG"):
            traceback.print_exc()  # the traceback, and still the error's own exit code
        else:
            print(f"neurcodec: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("neurcodec: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("neurcodec: aborted", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:  # usage errors come through here in non-standalone mode
        if isinstance(exc, _click_exceptions()):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


def _click_exceptions() -> tuple[type[Exception], ...]:
    # Typer may bundle its own copy of click; usage errors can come from either.
    import click

    types: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as BundledClickException

        types.append(BundledClickException)
    except ImportError:
        pass
    return tuple(types)
