"""SEN12MS-CR-TS as its authors release it: file names, regions of interest and the official
split (Ebel et al. 2022, "SEN12MS-CR-TS: A Remote Sensing Data Set for Multi-modal
Multi-temporal Cloud Removal"; PatrickTUM/UnCRtainTS ``data/dataLoader.py``, the loader every
published row of that benchmark used).

Layout (the archives unpacked and merged as the authors' ``util/dl_data.sh`` does)::

    ROOT/ROIs1970/21/S2/0/s2_ROIs1970_21_ImgNo_0_2018-01-03_patch_12.tif
    ROOT/ROIs1970/21/S1/0/s1_ROIs1970_21_ImgNo_0_2018-01-04_patch_12.tif

``<roi_id>/<roi>/<S1|S2>/<t>/<s1|s2>_<roi_id>_<roi>_ImgNo_<t>_<YYYY-MM-DD>_patch_<n>.tif``:
53 regions of interest (ROIs), 30 time points ``t`` (0-29) of one year each, 256 x 256 px
patches ``n`` (the same patch number is the same place at every date), S1 (VV, VH dB) and S2
(13 bands L1C DN) acquired within days of each other (the date in each name is that file's own
acquisition). The archives are per modality and region: ``s2_africa.tar.gz`` (train and val
ROIs, unpacking to ``africa/ROIs.../...``) and ``s2_africa_test.tar.gz`` (test ROIs, unpacking
to ``s2_africa_test/ROIs.../...``), likewise ``s1_*``.
"""

from __future__ import annotations

import posixpath
import re
from datetime import date
from typing import Final, NamedTuple

#: Time points per ROI (``ImgNo`` 0-29).
TIME_POINTS: Final[int] = 30
#: Upstream counts the days of each image from Sentinel-1A's launch (its ``S1_LAUNCH``): the
#: temporal encoding of UnCRtainTS's multi-temporal model reads these day numbers.
S1_LAUNCH: Final[date] = date(2014, 4, 3)

#: ``s2_ROIs1970_21_ImgNo_0_2018-01-03_patch_12.tif``.
TS_NAME: Final[re.Pattern[str]] = re.compile(
    r"^(?P<modality>s1|s2)_(?P<roi_id>ROIs\d{4})_(?P<roi>\d+)_ImgNo_(?P<t>\d+)_"
    r"(?P<date>\d{4}-\d{2}-\d{2})_patch_(?P<patch>\d+)(?i:\.tiff?)$"
)

#: The ROIs of the release, by ROI group (upstream's ``self.ROI``).
ROIS: Final[dict[str, tuple[str, ...]]] = {
    "ROIs1158": ("106",),
    "ROIs1868": ("17", "36", "56", "73", "85", "100", "114", "119", "121", "126", "127", "139",
                 "142", "143"),
    "ROIs1970": ("20", "21", "35", "40", "57", "65", "71", "82", "83", "91", "112", "116",
                 "119", "128", "132", "133", "135", "139", "142", "144", "149"),
    "ROIs2017": ("8", "22", "25", "32", "49", "61", "63", "69", "75", "103", "108", "115",
                 "116", "117", "130", "140", "146"),
}  # fmt: skip

#: Official test and validation ROIs (``region="all"``); every other ROI is train.
OFFICIAL_TEST: Final[tuple[str, ...]] = (
    "ROIs1868/119", "ROIs1970/139", "ROIs2017/108", "ROIs2017/63", "ROIs1158/106",
    "ROIs1868/73", "ROIs2017/32", "ROIs1868/100", "ROIs1970/132", "ROIs2017/103",
    "ROIs1868/142", "ROIs1970/20", "ROIs2017/140",
)  # fmt: skip
OFFICIAL_VAL: Final[tuple[str, ...]] = (
    "ROIs2017/22", "ROIs1970/65", "ROIs2017/117", "ROIs1868/127", "ROIs1868/17",
)  # fmt: skip

#: Per-region splits (upstream's ``region=...``): test, val and train ROIs of each continent.
#: Each of the 53 ROIs is in exactly one region, and a region's test and val ROIs are exactly
#: the official ones that lie in it (tested).
REGION_SPLITS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "africa": {
        "test": ("ROIs2017/32", "ROIs2017/140"),
        "val": ("ROIs2017/22",),
        "train": ("ROIs1970/21", "ROIs1970/35", "ROIs1970/40", "ROIs2017/8", "ROIs2017/61",
                  "ROIs2017/75"),
    },
    "america": {
        "test": ("ROIs1158/106", "ROIs1970/132"),
        "val": ("ROIs1970/65",),
        "train": ("ROIs1868/36", "ROIs1868/85", "ROIs1970/82", "ROIs1970/142", "ROIs2017/49",
                  "ROIs2017/116"),
    },
    "asiaEast": {
        "test": ("ROIs1868/73", "ROIs1868/119", "ROIs1970/139"),
        "val": ("ROIs2017/117",),
        "train": ("ROIs1868/114", "ROIs1868/126", "ROIs1868/143", "ROIs1970/116",
                  "ROIs1970/135", "ROIs2017/25"),
    },
    "asiaWest": {
        "test": ("ROIs1868/100",),
        "val": ("ROIs1868/127",),
        "train": ("ROIs1970/57", "ROIs1970/83", "ROIs1970/112", "ROIs2017/69", "ROIs2017/115",
                  "ROIs2017/130"),
    },
    "europa": {
        "test": ("ROIs2017/63", "ROIs2017/103", "ROIs2017/108", "ROIs1868/142", "ROIs1970/20"),
        "val": ("ROIs1868/17",),
        "train": ("ROIs1868/56", "ROIs1868/121", "ROIs1868/139", "ROIs1970/71", "ROIs1970/91",
                  "ROIs1970/119", "ROIs1970/128", "ROIs1970/133", "ROIs1970/144",
                  "ROIs1970/149", "ROIs2017/146"),
    },
}  # fmt: skip
REGIONS: Final[tuple[str, ...]] = ("all", *REGION_SPLITS)
TS_SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")


def all_rois() -> tuple[str, ...]:
    """Every ROI of the release as ``"ROIs1970/21"``, in upstream's order."""
    return tuple(f"{group}/{roi}" for group, rois in ROIS.items() for roi in rois)


def region_of(roi: str) -> str | None:
    """The continent whose split lists ``roi`` (``"ROIs1970/21"`` -> ``"africa"``), or None."""
    return next((r for r, s in REGION_SPLITS.items() if any(roi in v for v in s.values())), None)


def split_of(roi: str, region: str = "all") -> str | None:
    """The split of ``roi`` under ``region`` (upstream's ``region`` argument): ``"train"``,
    ``"val"``, ``"test"``, or None where that region's split does not use it.

    Raises:
        ValueError: an unknown region (the message lists them).
    """
    if region == "all":
        if roi not in all_rois():
            return None
        return "test" if roi in OFFICIAL_TEST else "val" if roi in OFFICIAL_VAL else "train"
    if region not in REGION_SPLITS:
        raise ValueError(f"unknown region {region!r}; expected one of {list(REGIONS)}")
    return next((k for k, v in REGION_SPLITS[region].items() if roi in v), None)


class TSFile(NamedTuple):
    """What a SEN12MS-CR-TS file name says."""

    modality: str  # "s1" or "s2"
    roi: str  # "ROIs1970/21"
    t: int  # time point, 0-29
    date: date  # this file's acquisition date
    patch: int


def parse_name(name: str) -> TSFile | None:
    """The :class:`TSFile` of a file name (any folder in front of it), or None if it is not a
    SEN12MS-CR-TS name. A name with an impossible date (2018-02-30) is not one either."""
    m = TS_NAME.match(posixpath.basename(name))
    if m is None:
        return None
    try:
        day = date.fromisoformat(m["date"])
    except ValueError:
        return None
    roi = f"{m['roi_id']}/{m['roi']}"
    return TSFile(m["modality"], roi, int(m["t"]), day, int(m["patch"]))


def relative_path(f: TSFile) -> str:
    """The file's path under ROOT, as the release lays it out."""
    group, roi = f.roi.split("/")
    name = f"{f.modality}_{group}_{roi}_ImgNo_{f.t}_{f.date.isoformat()}_patch_{f.patch}.tif"
    return f"{group}/{roi}/{f.modality.upper()}/{f.t}/{name}"


def days_since_s1_launch(day: date) -> int:
    """Upstream's time coordinate of an image (``(date - S1_LAUNCH).days``)."""
    return (day - S1_LAUNCH).days
