"""``cloudfree mask``: the cloud/shadow mask of a GeoTIFF scene.

Only light imports at module level: ``cloudfree --help`` builds every parser."""

from __future__ import annotations

import argparse


def add_mask(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mask",
        help="cloud/shadow mask of a Sentinel-2 L1C GeoTIFF (the DSen2-CR algorithm)",
        description=(
            "Compute the cloud/shadow mask of Meraner et al. 2020 on a 13-band L1C GeoTIFF of "
            "any size, in windows, and write a uint8 GeoTIFF on the same grid: 0 clear, 1 cloud, "
            "2 shadow. The s2cloudless backend (extra 'masks') gives clouds only (0/1)."
        ),
    )
    p.add_argument("s2", help="13-band Sentinel-2 L1C GeoTIFF (DN = reflectance x 10000)")
    p.add_argument("--out", required=True, help="mask GeoTIFF to write")
    p.add_argument("--backend", choices=("dsen2cr", "s2cloudless"), default="dsen2cr")
    p.add_argument("--window", type=int, default=1024, help="window side in pixels (default 1024)")
    p.set_defaults(func=run_mask)


def run_mask(args: argparse.Namespace) -> int:
    from cloudfree.masks.scene import run_mask_cli

    return run_mask_cli(args.s2, args.out, args.backend, args.window)
