"""The `neurcodec` command: a thin Typer layer over the Python API.

Each command group lives in its own module and registers itself on `app`;
this module only wires them together and maps errors to exit codes.
"""

from __future__ import annotations

import os
import sys

import typer

from neurcodec.errors import NeurcodecError

app = typer.Typer(
    name="neurcodec",
    help="Neural image and video codec: a diffusion autoencoder that samples what it can't compress.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    # Imported for their side effect of adding commands to `app`.
    import importlib

    for module in ("codec_cmd", "models_cmd", "bench_cmd", "train_cmd"):
        try:
            importlib.import_module(f"neurcodec.cli.{module}")
        except ModuleNotFoundError as exc:  # a command group not written yet
            if exc.name != f"neurcodec.cli.{module}":
                raise


_register_commands()


def main() -> None:
    """Console-script entry point: run the app, turn NeurcodecError into one line + exit code."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app(standalone_mode=False)
    except NeurcodecError as exc:
        if debug or os.environ.get("NEURCODEC_DEBUG"):
            raise
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
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
