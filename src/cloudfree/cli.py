"""The ``cloudfree`` command: one entry point, one subcommand per pipeline stage.

This module only dispatches: each subcommand's parser and handler live beside the code they
drive (``<package>/cli.py``: ``add_*`` builds the parser, its ``func`` runs the command), and
import library code lazily so that ``cloudfree --help`` stays fast and optional extras are only
needed by the commands that use them.
``main(argv)`` is callable from tests.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from cloudfree import __version__
from cloudfree.errors import CloudfreeError, root_reason


def _commands() -> tuple[Callable[[argparse._SubParsersAction], None], ...]:
    """Every subcommand's parser adder, in pipeline order. Each lives beside the code it
    drives and is imported here, when the parser is built, not at import time (those modules
    keep their heavy imports lazy)."""
    from cloudfree import demo
    from cloudfree.data.packed import cli as pack_cli
    from cloudfree.data.release import cli as index_cli
    from cloudfree.data.s1grd import cli as s1_cli
    from cloudfree.data.sentinel import cli as safe_cli
    from cloudfree.data.stac import cli as fetch_cli
    from cloudfree.data.synthetic import cli as synth_cli
    from cloudfree.evaluate import cli as evaluate_cli
    from cloudfree.masks import cli as mask_cli
    from cloudfree.models import cli as models_cli
    from cloudfree.predict import cli as predict_cli
    from cloudfree.predict import composite_cli, inpaint_cli
    from cloudfree.train import cli as train_cli
    from cloudfree.viewer import cli as view_cli
    from cloudfree.viewer import render_cli
    from cloudfree.weights import cli as weights_cli

    return (
        synth_cli.add_synth,
        index_cli.add_index,
        pack_cli.add_pack,
        train_cli.add_train,
        evaluate_cli.add_evaluate,
        evaluate_cli.add_compare,
        evaluate_cli.add_replicate,
        mask_cli.add_mask,
        safe_cli.add_parser,
        fetch_cli.add_parser,
        s1_cli.add_parser,
        inpaint_cli.add_parser,
        predict_cli.add_parser,
        composite_cli.add_parser,
        render_cli.add_parser,
        view_cli.add_parser,
        models_cli.add_convert_keras,
        models_cli.add_convert_uncrtaints,
        weights_cli.add_parser,
        demo.add_demo,
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the docs)."""
    parser = argparse.ArgumentParser(
        prog="cloudfree",
        description="Cloud removal for Sentinel-2 with Sentinel-1 SAR fusion (DSen2-CR).",
    )
    parser.add_argument("--version", action="version", version=f"cloudfree {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on an error, show the full Python traceback"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _commands():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 bad input, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    saved_format = warnings.formatwarning
    handler = _log_handler(args.debug)
    if not args.debug:
        # One line per warning, without the source line Python's default format prints;
        # put back afterwards (main is also called from Python and tests).
        warnings.formatwarning = _format_warning
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"cloudfree {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        print(f"cloudfree {args.command}: error: {error_text(e)}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = saved_format
        logging.getLogger("cloudfree").removeHandler(handler)


class _LogFormat(logging.Formatter):
    """``cloudfree: MESSAGE`` for notes, ``cloudfree: warning: MESSAGE`` and so on above."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        return f"cloudfree: {level}{record.getMessage()}"


def _log_handler(debug: bool) -> logging.Handler:
    """Print cloudfree's log records on stderr for the command's run: notes (INFO) and above,
    DEBUG too with ``--debug``. Other libraries' records (rasterio relays every GDAL message
    at INFO) stay at Python's default, warnings and above."""
    handler = _LogHandler()
    handler.setFormatter(_LogFormat())
    logger = logging.getLogger("cloudfree")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.addHandler(handler)
    return handler


def _format_warning(
    message: Warning | str, category: type[Warning], *args: object, **kwargs: object
) -> str:
    text = f"cloudfree: warning: {message}"
    if _bars_on_screen():
        # Printed above the bars by tqdm, not glued to the end of one; nothing left to print.
        _write_above_bars(text)
        return ""
    return text + "\n"


def _bars_on_screen() -> bool:
    """Whether a tqdm progress bar is showing (tqdm imported and an instance alive)."""
    tqdm_mod = sys.modules.get("tqdm")
    return tqdm_mod is not None and bool(getattr(tqdm_mod.tqdm, "_instances", None))


def _write_above_bars(text: str) -> None:
    """``text`` on stderr on a line of its own, above any progress bar (tqdm.write)."""
    if _bars_on_screen():
        sys.modules["tqdm"].tqdm.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr)


class _LogHandler(logging.Handler):
    """cloudfree's log records on stderr, above any progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _write_above_bars(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def error_text(e: BaseException) -> str:
    """One paragraph for a failed command: the message of the errors cloudfree raises on
    purpose (and of bad values and missing extras), the file and reason of an OS error, and
    for anything else the exception's type too, with where to look further."""
    if "See previous exception" in str(e):  # rasterio wrapping GDAL's error: GDAL's words
        return root_reason(e)
    if isinstance(e, KeyError):
        # A registry's "unknown name" is a sentence; a bare key is a bug, reported as such.
        text = str(e.args[0]) if e.args else ""
        if " " in text:
            return text
    elif isinstance(e, UnicodeDecodeError):  # a reader that does not say which file
        return f"a file given is not text ({e.reason} at byte {e.start}); give the CSV/YAML file"
    elif isinstance(e, CloudfreeError | ImportError | ValueError):
        # ImportError: an optional extra is missing; the message says what to install.
        return str(e)
    elif isinstance(e, OSError):
        where = e.filename if e.filename is not None else ""
        reason = e.strerror or str(e)
        return f"{where}: {reason}" if where else reason
    return (
        f"{type(e).__name__}: {e} (unexpected; run again with 'cloudfree --debug ...' for the "
        "traceback, and report it)"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
