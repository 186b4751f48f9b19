"""``cloudfree pack``: pack an index into memory-mapped shards (and fill their caches).

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse

from cloudfree.argtypes import nonnegative_int, positive_int


def add_pack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pack",
        help="convert an index into a few large memory-mapped shard files for fast training",
        description=(
            "Read every usable patch of an index and write them into a few large .npy shards "
            "(memory-mapped at training time: random access, no decoding) with a manifest. "
            "Interrupted runs resume: finished shards are kept."
        ),
    )
    p.add_argument(
        "index",
        help="index CSV written by 'cloudfree index' (of SEN12MS-CR, or of SEN12MS-CR-TS: each "
        "complete series, 30 dates of S2 and S1, into one slot of a shard)",
    )
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument(
        "--root", default=None, help="dataset root (default: the one the index recorded)"
    )
    p.add_argument("--split", default=None, help="pack only this split (train, val or test)")
    p.add_argument(
        "--shard-size",
        type=positive_int,
        default=None,
        help="patches per shard (default 1024, ~4 GB; SEN12MS-CR-TS: 16 series, ~1 GB)",
    )
    p.add_argument(
        "--require",
        default="s2,s2_cloudy",
        help="kinds a patch must have to be packed (default s2,s2_cloudy; s1,s2,s2_cloudy for "
        "SAR models only)",
    )
    p.add_argument(
        "--workers", type=nonnegative_int, default=2, help="reader processes (default 2)"
    )
    p.add_argument("--strict", action="store_true", help="fail on the first bad patch")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace whatever --out holds (default: resume the same pack, refuse a different one)",
    )
    p.add_argument(
        "--no-mask",
        dest="mask",
        action="store_false",
        help="do not compute the DSen2-CR cloud/shadow mask of each cloudy patch (default: "
        "compute it into the shards, for SampleConfig(mask='cached') and the CARL loss)",
    )
    p.add_argument(
        "--inpaint",
        action="append",
        default=[],
        metavar="METHOD",
        help="also cache each cloudy patch inpainted with METHOD (mask-fill, biharmonic, "
        "push-pull, sar-match, stable-diffusion) in the shards, for the hybrid models; "
        "repeatable; resumes shard by shard",
    )
    p.add_argument(
        "--sd-weights",
        default=None,
        help="folder of a Stable Diffusion inpainting pipeline (for --inpaint stable-diffusion)",
    )
    p.set_defaults(func=run_pack)


def run_pack(args: argparse.Namespace) -> int:
    from cloudfree.data.packed.pack import pack
    from cloudfree.data.source import series_kind
    from cloudfree.errors import CloudfreeError
    from cloudfree.inpaint.registry import SD_BASELINE, check_method

    if series_kind(args.index) == "index":
        return _pack_series(args)

    for method in args.inpaint:  # before packing, not after
        check_method(method)
        if method == SD_BASELINE and not args.sd_weights:
            raise CloudfreeError(
                "--inpaint stable-diffusion needs --sd-weights FOLDER (a diffusers inpainting "
                "pipeline saved locally)"
            )
    manifest = pack(
        args.index,
        args.out,
        root=args.root,
        split=args.split,
        shard_size=args.shard_size or 1024,
        require=tuple(k.strip() for k in args.require.split(",") if k.strip()),
        workers=args.workers,
        strict=args.strict,
        overwrite=args.overwrite,
        mask=args.mask,
    )
    print(
        f"packed {manifest['num_patches']} patches into {len(manifest['shards'])} shards "
        f"in {args.out} ({manifest['num_skipped']} skipped)"
    )
    if args.inpaint:
        from cloudfree.data.packed.inpaint_cache import fill_inpainting

        for method in args.inpaint:
            options = {"weights": args.sd_weights} if method == "stable-diffusion" else {}
            manifest = fill_inpainting(args.out, method, options, workers=args.workers)
            t = manifest["inpaint_timing"][method]
            per = (
                "" if t["seconds_per_patch"] is None else f", {t['seconds_per_patch']:.3f} s/patch"
            )
            print(f"inpainted {t['patches']} patches with {method} in {t['seconds']:.1f} s{per}")
    return 0


def _pack_series(args: argparse.Namespace) -> int:
    """``cloudfree pack TS_INDEX.csv --out DIR`` (:mod:`cloudfree.data.timeseries.pack`)."""
    from cloudfree.data.timeseries.pack import DEFAULT_SHARD_PATCHES, pack_series
    from cloudfree.errors import CloudfreeError

    one_date = {"--root": args.root is not None, "--require": args.require != "s2,s2_cloudy",
                "--no-mask": not args.mask, "--inpaint": bool(args.inpaint)}  # fmt: skip
    used = [flag for flag, on in one_date.items() if on]
    if used:
        raise CloudfreeError(
            f"{', '.join(used)} apply to SEN12MS-CR packs; a SEN12MS-CR-TS index packs its "
            "complete series (S1 too when every one has it) from the root its index recorded"
        )
    manifest = pack_series(
        args.index, args.out, split=args.split,
        shard_patches=args.shard_size or DEFAULT_SHARD_PATCHES, workers=args.workers,
        strict=args.strict, overwrite=args.overwrite,
    )  # fmt: skip
    n = sum(len(s["patches"]) for s in manifest["shards"])
    s1 = "S2 and S1" if manifest["include_s1"] else "S2 only"
    print(f"packed {n - len(manifest['skipped'])} series of {manifest['time_points']} dates "
          f"({s1}) into {len(manifest['shards'])} shards in {args.out} "
          f"({len(manifest['skipped'])} skipped)")  # fmt: skip
    return 0
