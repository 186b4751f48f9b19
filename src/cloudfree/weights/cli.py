"""``cloudfree weights list`` and ``cloudfree weights show NAME``: the named weights."""

from __future__ import annotations

import argparse

from cloudfree.errors import CloudfreeError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``weights`` on the ``cloudfree`` subcommand parser."""
    p = sub.add_parser(
        "weights",
        help="the named weights: --checkpoint NAME works wherever a checkpoint is accepted",
        description="List the named weights cloudfree knows, or show one entry's whole card.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    verbs.add_parser("list", help="a table of every named weights entry")
    show = verbs.add_parser("show", help="everything known about one entry")
    show.add_argument("name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the table or one entry."""
    from cloudfree.weights.registry import get_weights, list_weights

    if args.verb == "show":
        try:
            entry = get_weights(args.name)
        except KeyError as e:
            raise CloudfreeError(str(e.args[0])) from None
        for key, value in vars(entry).items():
            print(f"{key:12s} {value}")
        print(f"{'local file':12s} {entry.path()}")
        return 0
    rows = [("name", "model", "input", "source", "size", "available")]
    for e in list_weights():
        size = "?" if e.size_bytes is None else f"{e.size_bytes / 1e6:.2f} MB"
        try:
            available = "yes" if e.path().is_file() else "no"
        except CloudfreeError:
            available = "no"
        rows.append((e.name, e.model, e.input, e.source, size, available))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0
