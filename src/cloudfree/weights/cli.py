"""``cloudfree weights list | show NAME | fetch NAME | import FILE --name NAME``."""

from __future__ import annotations

import argparse

from cloudfree.errors import CloudfreeError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``weights`` on the ``cloudfree`` subcommand parser."""
    p = sub.add_parser(
        "weights",
        help="the named weights: list, show, fetch the paper's, import a downloaded file",
        description="The named weights cloudfree knows: --checkpoint NAME works wherever a "
        "checkpoint is accepted (predict, evaluate, compare, view, train --init). Downloaded "
        "and imported weights live in the user cache (CLOUDFREE_HOME overrides where).",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("list", help="a table of every named weights entry, and whether it is here")
    show = verbs.add_parser("show", help="everything known about one entry (its whole card)")
    show.add_argument("name")
    fetch = verbs.add_parser(
        "fetch",
        help="download an entry (progress bar, resume), verify it, convert it once",
        description="Download the named weights into the cache, check them (a web page instead "
        "of the file, size and SHA-256 where known, the exact layer shapes of the model), "
        "convert a Keras checkpoint to safetensors and print where it went. An interrupted "
        "download resumes when the same command is run again. Needs cloudfree[download].",
    )
    fetch.add_argument("name")
    fetch.add_argument("--url", help="download from this mirror instead (checked the same way)")
    fetch.add_argument("--force", action="store_true", help="download again even if cached")
    fetch.add_argument(
        "--retries", type=int, default=3, help="reconnections after a dropped connection (3)"
    )
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    imp = verbs.add_parser(
        "import",
        help="install a weights file you already have (offline machines, your own models)",
        description="Install FILE under NAME. A registry name (e.g. dsen2cr-sar-carl, after "
        "downloading model_SARcarl.hdf5 in a browser) checks the file is that entry's; any other "
        "name adds an entry of your own.",
    )
    imp.add_argument("file")
    imp.add_argument("--name", required=True)
    imp.add_argument("--force", action="store_true", help="replace your own entry of that name")
    imp.add_argument(
        "--conf",
        default=None,
        help="the conf.json beside an UnCRtainTS model.pth.tar (its configuration)",
    )
    p.set_defaults(func=run)


def _size(entry) -> str:  # noqa: ANN001 - a WeightsEntry
    if entry.size_bytes is not None:
        return f"{entry.size_bytes / 1e6:.1f} MB"
    approx = entry.approx_bytes
    return "?" if approx is None else f">= {approx / 1e6:.1f} MB"


def _source(entry) -> str:  # noqa: ANN001
    if entry.bundled or entry.local:
        return entry.source
    if "pcloud" in entry.source:
        return "pcloud"
    return "google drive" if "drive.google.com" in entry.source else "url"


def _here(entry) -> bool:  # noqa: ANN001
    try:
        return entry.path().is_file()
    except CloudfreeError:
        return False


def _list() -> None:
    from cloudfree.weights.registry import list_weights

    rows = [("name", "model", "input", "source", "size", "cached")]
    for e in list_weights():
        cached = "bundled" if e.bundled else ("yes" if _here(e) else "no")
        rows.append((e.name, e.model, e.input, _source(e), _size(e), cached))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    missing = [r[0] for r in rows[1:] if r[-1] == "no"]
    if missing:
        print(f"\nnot here yet: cloudfree weights fetch NAME (e.g. {missing[0]})")


def _show(name: str) -> None:
    from cloudfree.weights import cache
    from cloudfree.weights.registry import get_weights

    try:
        entry = get_weights(name)
    except KeyError as e:
        raise CloudfreeError(str(e.args[0])) from None
    rows = [
        ("name", entry.name),
        ("model", entry.model),
        ("config", ", ".join(f"{k}={v}" for k, v in entry.config.items()) or "(in the file)"),
        ("input", entry.input),
        ("scaling", entry.scaling),
        ("for", entry.description),
        ("source", entry.source),
        ("format", entry.format),
        ("file", entry.filename),
        ("size", _size(entry)),
        ("sha256", entry.sha256 or "not published (the first download's is recorded)"),
        ("licence", entry.licence),
        ("cite", entry.citation or "-"),
        ("homepage", entry.homepage or "-"),
    ]
    if entry.bundled:
        rows.append(("local file", str(entry.path())))
    else:
        record = cache.read_record(entry.name)
        if record is None:
            rows.append(("cached", f"no; run: cloudfree weights fetch {entry.name}"))
        else:
            rows += [
                ("cached", str(cache.weights_path(entry.name))),
                ("fetched", f"{record.get('fetched_at')} from {record.get('source')}"),
                ("download", f"sha256 {record.get('download_sha256')}, "
                 f"{record.get('download_bytes')} bytes ({record.get('format')})"),
            ]  # fmt: skip
    import textwrap

    for key, value in rows:
        print(textwrap.fill(value, width=100, initial_indent=f"{key:10s} ", subsequent_indent=" " * 11,
                            break_long_words=False, break_on_hyphens=False))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run one verb."""
    if args.verb == "list":
        _list()
        return 0
    if args.verb == "show":
        _show(args.name)
        return 0
    from cloudfree.weights.fetch import fetch, import_file

    if args.verb == "fetch":
        done = fetch(args.name, url=args.url, force=args.force, retries=args.retries,
                     quiet=args.quiet)  # fmt: skip
    else:
        done = import_file(args.file, args.name, force=args.force, conf=args.conf)
    verb = "fetched" if args.verb == "fetch" else "imported"
    if not done.fresh:
        print(f"{done.name} is already cached (--force to fetch it again)")
    else:
        print(f"{verb} {done.name}: {done.record['model']} from {done.record['source']}")
        print(f"  downloaded sha256 {done.record['download_sha256']}")
    print(f"  {done.path}  (sha256 {done.record['sha256']})")
    print(f"use it: cloudfree predict --checkpoint {done.name} ...")
    return 0
