"""``cloudfree index``: find the patches of a SEN12MS-CR release and write its index.

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="find every SEN12MS-CR (or SEN12MS-CR-TS) patch under ROOT and write an index CSV",
        description=(
            "Find every patch under ROOT (the release layout unpacked, the release .tar.gz "
            "archives, or the flat DSen2-CR layout with its CSV file list) and write one row per "
            "patch: roi_season,scene,patch,split,s1,s2,s2_cloudy (paths relative to ROOT, empty "
            "where missing). Prints what is complete and what is not. A SEN12MS-CR-TS copy "
            "(ROIs<id>/<roi>/S1|S2/<t>/ folders, or its s1_/s2_<region>[_test].tar.gz archives) "
            "is recognised: one row per patch and date, "
            "roi,patch,t,split,region,s2_date,s1_date,s2,s1, with the official ROI split."
        ),
    )
    p.add_argument("root", help="dataset folder")
    p.add_argument("--out", required=True, help="index CSV to write")
    p.add_argument(
        "--splits",
        default=None,
        help="your own split file (CSV with columns roi_season,scene,split and optionally patch), "
        "or the DSen2-CR authors' file list (Data/datasetfilelist.csv of ameraner/dsen2-cr, tab- "
        "or comma-separated: the paper's own train/val/test patches), instead of the official "
        "SEN12MS-CR ROI split",
    )
    p.add_argument(
        "--file-list",
        default=None,
        help="DSen2-CR CSV file list (split,s1_dir,s2_dir,s2_cloudy_dir,file; tab or ', ' "
        "separated); found automatically as ROOT/*.csv in the flat layout",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="open every file's header and report bad ones (band count, dtype, size, grid)",
    )
    p.add_argument("--strict", action="store_true", help="fail on the first bad file")
    ts = p.add_argument_group("SEN12MS-CR-TS")
    ts.add_argument(
        "--coverage",
        choices=("s2cloudless", "dsen2cr"),
        default=None,
        help="also compute the cloud coverage of every S2 date with this masker, as the "
        "UnCRtainTS loader does (s2cloudless: its default; extra 'masks'), cached beside the "
        "index (INDEX.coverage-MASKER.csv) and resumed if interrupted",
    )
    ts.add_argument(
        "--samples",
        default=None,
        metavar="FILE",
        help="take the cloud coverage from the authors' pre-computed sample file "
        "(generic_3_test_all_s2cloudless_mask.npy) instead of computing it",
    )
    p.set_defaults(func=run_index)


def run_index(args: argparse.Namespace) -> int:
    from cloudfree.data.release.discover import build_index
    from cloudfree.data.release.index import format_summary, write_index
    from cloudfree.outputs import OutputError, check_outputs

    out = Path(args.out)
    check_outputs({"--out": out}, [args.splits, args.file_list], example="index.csv")
    if out.is_file() and out.suffix.lower() != ".csv":
        # Re-indexing overwrites an earlier index (a CSV), never a file of the dataset.
        raise OutputError(
            f"--out {out} exists and is not a CSV index (a file of the dataset?); refusing to "
            "overwrite it. Give a .csv file name, e.g. --out index.csv"
        )
    if _timeseries(args):
        return 0
    if args.coverage or args.samples:
        from cloudfree.errors import CloudfreeError

        raise CloudfreeError(
            "--coverage and --samples are for SEN12MS-CR-TS (ROIs<id>/<roi>/S1|S2/<t>/ "
            f"folders or its s1_/s2_<region> archives), and {args.root} holds none"
        )
    result = build_index(
        args.root,
        split_file=args.splits,
        file_list=args.file_list,
        check=args.check,
        strict=args.strict,
    )
    write_index(result, args.out)
    print(format_summary(result))
    print(f"wrote {len(result.rows)} rows to {args.out}")
    return 0


def _timeseries(args: argparse.Namespace) -> bool:
    """Index ROOT as SEN12MS-CR-TS if it is one; False if it is not."""
    from cloudfree.data.timeseries.index import (
        build_ts_index,
        check_ts_files,
        looks_like_timeseries,
        summarize,
        write_ts_index,
    )
    from cloudfree.errors import CloudfreeError

    if not looks_like_timeseries(args.root):
        return False
    if args.splits or args.file_list:
        raise CloudfreeError(
            f"{args.root} holds SEN12MS-CR-TS, which is split by its official ROI split; "
            "--splits and --file-list are for SEN12MS-CR: leave them out"
        )
    index = build_ts_index(args.root)
    if args.check:
        check_ts_files(index, strict=args.strict)
    write_ts_index(index, args.out)
    print(summarize(index))
    print(f"wrote {len(index.files)} rows (one per patch and date) to {args.out}")
    if args.samples or args.coverage:
        _ts_coverage(index, args)
    return True


def _ts_coverage(index: Any, args: argparse.Namespace) -> None:
    """Write the coverage cache of the index: from the authors' sample file, or computed."""
    from cloudfree.data.timeseries.coverage import (
        compute_coverage,
        coverage_cache_path,
        seed_coverage_cache,
    )

    rows = index.rows()
    s2 = [r["s2"] for r in rows if r["s2"]]
    if args.samples:
        from cloudfree.data.timeseries.samples import read_sample_file

        masker = "dsen2cr" if "cloud_cloudshadow" in Path(args.samples).name else "s2cloudless"
        known = read_sample_file(args.samples).coverage_of(rows)
        cache = coverage_cache_path(args.out, masker)
        seed_coverage_cache(index.root, known, cache)
        print(f"coverage of {len(known)} of {len(s2)} S2 dates from {args.samples} -> {cache}")
        return
    cache = coverage_cache_path(args.out, args.coverage)
    compute_coverage(index.root, s2, cache, args.coverage, progress=True)
    print(f"cloud coverage ({args.coverage}) of {len(s2)} S2 dates -> {cache}")
