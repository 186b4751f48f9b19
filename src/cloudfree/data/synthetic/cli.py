"""``cloudfree synth``: write a small synthetic SEN12MS-CR-like release.

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse

from cloudfree.argtypes import positive_int


def add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write a synthetic SEN12MS-CR-like dataset in the release layout",
        description=(
            "Synthesise N triplets (S1, cloud-free S2, cloudy S2) in the SEN12MS-CR release "
            "layout: coherent land cover, plausible 13-band L1C reflectances, S1 with speckle, "
            "thick and thin clouds with fractal edges and displaced shadows. For tests and demos."
        ),
    )
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--n", type=positive_int, default=16, help="number of triplets (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--size", type=positive_int, default=256, help="patch side in pixels (default 256)"
    )
    p.add_argument(
        "--clear-from",
        default=None,
        help="put simulated clouds over the real clear 13-band S2 GeoTIFFs found in this folder",
    )
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from cloudfree.data.synthetic.release import synthesize
    from cloudfree.outputs import check_output_dir

    check_output_dir(args.out, "OUT", [args.clear_from])
    written = synthesize(
        args.out, n=args.n, seed=args.seed, size=args.size, clear_from=args.clear_from
    )
    print(f"wrote {written} triplets to {args.out}")
    return 0
