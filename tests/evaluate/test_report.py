"""``report.html``: self-contained, same numbers as summary.json, examples really ranked."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cloudfree.data.release.discover import build_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.evaluate.examples import pick_examples, select_examples
from cloudfree.evaluate.report import REPORT_FILES, distribution_figure, write_report
from cloudfree.evaluate.run import PER_PATCH_COLUMNS, evaluate
from cloudfree.evaluate.table import TABLE1_COLUMNS, table_values
from cloudfree.io import read_raster
from cloudfree.masks.csm import cloud_shadow_mask
from cloudfree.render import error_map, mask_rgb, panel, true_colour

DATA_URI = "data:image/png;base64,"
# The decimals of the paper's Table 1 (MAE/RMSE 4, PSNR/SAM 2, SSIM 3), written out here.
DECIMALS = {"mae": 4, "mae_reprod": 4, "mae_recon": 4, "rmse": 4, "psnr": 2, "sam": 2,
            "sam_reprod": 2, "sam_recon": 2, "ssim": 3}  # fmt: skip


class Page(HTMLParser):
    """Tags, attributes, table cells and visible text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.tables: list[tuple[str, list[list[str]]]] = []  # (class, rows of cell texts)
        self.row_classes: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(k, v or "") for k, v in attrs]
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        elif tag == "table":
            self.tables.append((a.get("class") or "", []))
        elif tag == "tr":
            self.tables[-1][1].append([])
            self.row_classes.append(a.get("class") or "")
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, cls: str, nth: int = 0) -> list[list[str]]:
        return [rows for c, rows in self.tables if c == cls][nth]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def expected_cell(key: str, value: float | None) -> str:
    # The table's rule (evaluate.table.UNDEFINED): a NaN shows "n/a", as a null in the JSON.
    undefined = value is None or math.isnan(value)
    return "n/a" if undefined else f"{value:.{DECIMALS[key]}f}"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, n=10, size=32, seed=3)
    return root


@pytest.fixture(scope="module")
def evaluated(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    evaluate("identity", synth, out, split=None, batch_size=4)
    return out


def test_report_is_self_contained_with_both_figures(evaluated: Path) -> None:
    for name in ("table.md", *REPORT_FILES):
        assert (evaluated / name).is_file(), name
    page = parse(evaluated / "report.html")
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert len(page.images) == 2 and all(src.startswith(DATA_URI) for src in page.images)
    embedded = [base64.b64decode(src[len(DATA_URI) :]) for src in page.images]
    assert embedded == [
        (evaluated / "distributions.png").read_bytes(),
        (evaluated / "examples.png").read_bytes(),
    ]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in embedded)
    raw = (evaluated / "report.html").read_text()
    text = re.sub(re.escape(DATA_URI) + "[A-Za-z0-9+/=]*", "", raw)
    assert not re.search(r"https?:|url\(|//[a-z]", text, re.I)
    for _, value in page.attrs:
        assert value.startswith(DATA_URI) or "//" not in value


def test_tables_show_summary_json_values(evaluated: Path) -> None:
    summary = json.loads((evaluated / "summary.json").read_text())
    page = parse(evaluated / "report.html")
    header, row = page.table("metrics", 0)
    assert row[0] == "identity" and len(row) == 1 + len(TABLE1_COLUMNS)
    shown = table_values(summary["metrics"], summary["table_psnr"])
    assert summary["table_psnr"] == "psnr_mean_rmse"  # paper protocol: PSNR of the mean RMSE
    assert row[1:] == [expected_cell(k, shown[k]) for k in TABLE1_COLUMNS]
    # Same cells as table.md, written by the evaluation itself.
    md_row = next(
        ln for ln in (evaluated / "table.md").read_text().splitlines() if "| identity |" in ln
    )
    assert [c.strip() for c in md_row.strip("|").split("|")] == row
    for nth, key in ((1, "by_season"), (2, "by_cloud_bin")):
        header, *rows = page.table("metrics", nth)
        assert header[-1] == "n" and [r[0] for r in rows] == list(summary[key])
        for r in rows:
            group = summary[key][r[0]]
            assert int(r[-1]) == group["count"]
            shown = table_values(group, summary["table_psnr"])
            assert r[1:-1] == [expected_cell(k, shown[k]) for k in TABLE1_COLUMNS]
    text = " ".join(page.text)
    assert summary["created_utc"] in text and f"{summary['count']} patches evaluated" in text


def test_examples_are_the_best_median_and_worst_patches(evaluated: Path) -> None:
    rows = read_csv(evaluated / "per_patch.csv")
    mae = {r["id"]: float(r["mae"]) for r in rows}
    ranked = sorted(mae, key=mae.__getitem__)
    page = parse(evaluated / "report.html")
    header, *shown = page.table("examples")
    assert header == ["Group", "Rank", "Patch", "mae", "Cloud cover"]
    groups = [(g, int(r), pid, float(v)) for g, r, pid, v, _ in shown]
    assert [g for g, *_ in groups] == ["best"] * 3 + ["median"] * 3 + ["worst"] * 3
    best = [pid for g, _, pid, _ in groups if g == "best"]
    worst = [pid for g, _, pid, _ in groups if g == "worst"]
    median = [pid for g, _, pid, _ in groups if g == "median"]
    assert best[0] == min(mae, key=mae.__getitem__) and best == ranked[:3]
    assert worst[0] == max(mae, key=mae.__getitem__) and worst == ranked[::-1][:3]
    assert ranked[(len(ranked) - 1) // 2] in median and median == ranked[3:6]
    for _, _, pid, v in groups:
        assert v == pytest.approx(mae[pid], abs=5e-5)  # 4 decimals
    listed = read_csv(evaluated / "examples.csv")
    assert [r["id"] for r in listed] == best + median + worst
    assert {r["sar"] for r in listed} == {"False"}


def test_best_row_shows_the_best_patch(synth: Path, evaluated: Path) -> None:
    from PIL import Image

    best = read_csv(evaluated / "examples.csv")[0]["id"]
    index = build_index(synth)
    row = next(r for r in index.rows if r.id == best)
    cloudy = np.clip(read_raster(index.resolve(row, "s2_cloudy"))[0], 0, 10000)
    target = np.clip(read_raster(index.resolve(row, "s2"))[0], 0, 10000)
    # Identity: the prediction is the cloudy input. No SAR column for a method without S1.
    images = [true_colour(cloudy), true_colour(cloudy), true_colour(target)]
    images += [mask_rgb(cloud_shadow_mask(cloudy)), error_map(cloudy, target)]
    body = panel(images, ["INPUT", "PRED", "TARGET", "MASK", "ERROR"])
    strip = panel([np.full((1, 1, 3), 255, np.uint8)], ["X"]).shape[0]  # the label's height
    grid = np.asarray(Image.open(io.BytesIO((evaluated / "examples.png").read_bytes())))
    drawn = grid[strip : strip + body.shape[0], : body.shape[1]].astype(int)
    assert np.abs(drawn - body).max() <= 1  # float32 network round trip


def test_sar_column_and_report_off(synth: Path, tmp_path: Path) -> None:
    class WithSar:
        name, include_sar, scaling = "sar-identity", True, "dsen2cr"

        def predict(self, batch: dict[str, Any]) -> torch.Tensor:
            assert batch["s1"].shape[1] == 2
            return batch["s2_cloudy"].clone()

    from PIL import Image

    evaluate(WithSar(), synth, tmp_path, split=None, limit=2)
    listed = read_csv(tmp_path / "examples.csv")
    assert len(listed) == 2 and {r["sar"] for r in listed} == {"True"}  # best 1, worst 1
    width = Image.open(tmp_path / "examples.png").size[0]
    tile = np.zeros((32, 32, 3), np.uint8)
    assert width == panel([tile] * 6).shape[1]  # input, SAR, prediction, target, mask, error
    assert "INPUT | SAR | PRED" in (tmp_path / "report.html").read_text()
    # Without a report, the figures of the earlier evaluation go (they describe other rows).
    evaluate(WithSar(), synth, tmp_path, split=None, limit=2, report=False)
    assert not any((tmp_path / name).exists() for name in REPORT_FILES)
    assert (tmp_path / "table.md").is_file()


def test_write_report_rebuilds_the_page(evaluated: Path, tmp_path: Path) -> None:
    for name in ("per_patch.csv", "summary.json", "examples.png", "examples.csv"):
        (tmp_path / name).write_bytes((evaluated / name).read_bytes())
    assert write_report(tmp_path) == tmp_path / "report.html"

    def stable(p: Path) -> str:
        return re.sub(r"Report written [0-9TZ:-]+", "", p.read_text())

    assert stable(tmp_path / "report.html") == stable(evaluated / "report.html")
    assert (tmp_path / "distributions.png").read_bytes() == (
        evaluated / "distributions.png"
    ).read_bytes()


def write_folder(folder: Path, ids: list[str], mae: list[float], method: str) -> None:
    """A hand-made evaluation folder: per_patch.csv with these ids and MAEs, summary.json."""
    folder.mkdir()
    with open(folder / "per_patch.csv", "w", newline="") as f:
        w = csv.DictWriter(f, PER_PATCH_COLUMNS)
        w.writeheader()
        for i, (pid, v) in enumerate(zip(ids, mae, strict=True)):
            row = dict.fromkeys(PER_PATCH_COLUMNS, "0.5")
            row.update(id=pid, roi_season="ROIs1_spring", scene="1", patch=str(i))
            row.update(season="spring", mae=repr(v), mae_recon="nan", psnr="inf")
            w.writerow(row)
    metrics = dict.fromkeys(TABLE1_COLUMNS, 0.5)
    summary = {"method": method, "protocol": "paper", "split": "test", "count": len(ids),
               "skipped": 0, "metrics": metrics, "data": "d", "created_utc": "2026-01-01T00:00:00Z"}  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary))


def test_text_is_escaped_and_nan_not_ranked(tmp_path: Path) -> None:
    ids = ['<b id="x">bold</b>&amp;', "p1", "p2", "p3", "<script>alert(1)</script>"]
    mae = [0.01, 0.02, 0.03, 0.04, math.nan]
    write_folder(tmp_path / "e", ids, mae, method="<script>alert('m')</script>")
    write_report(tmp_path / "e")
    raw = (tmp_path / "e" / "report.html").read_text()
    page = parse(tmp_path / "e" / "report.html")
    assert "script" not in page.tags and "b" not in page.tags
    assert "<script>" not in raw and "<b " not in raw
    assert "&lt;b id=&quot;x&quot;&gt;bold&lt;/b&gt;&amp;amp;" in raw
    header, *shown = page.table("examples")
    # The NaN patch (which a plain sort would put last: "worst") is not ranked.
    assert [(g, pid) for g, _, pid, *_ in shown] == [
        ("best", ids[0]), ("best", "p1"), ("best", "p2"), ("worst", "p3"),
    ]  # fmt: skip
    assert len(page.images) == 1  # distributions only: no examples.png in this folder
    counts = {r[0]: r[1:] for r in page.table("counts")[1:]}
    assert counts["mae"] == ["4", "1", "0"]  # shown, NaN, infinite
    assert counts["mae_recon"] == ["0", "5", "0"] and counts["psnr"] == ["0", "0", "5"]


def test_distribution_figure_leaves_out_nan_and_inf() -> None:
    values = {
        "mae": np.array([0.1, np.nan, 0.2, 0.3, np.nan]),
        "psnr": np.array([20.0, np.inf, 30.0, 25.0, 22.0]),
        "mae_recon": np.full(5, np.nan),
    }
    fig = distribution_figure(values)
    axes = {ax.get_title().split()[0]: ax for ax in fig.axes if ax.get_title()}
    assert set(axes) == {"mae", "psnr", "mae_recon"}
    for key, n in (("mae", 3), ("psnr", 4), ("mae_recon", 0)):
        assert axes[key].get_title() == f"{key} (n={n} of 5)"
        assert sum(p.get_height() for p in axes[key].patches) == n  # histogram bar heights
    assert axes["mae"].patches[0].get_x() == pytest.approx(0.1)  # range of the finite values
    left = axes["mae"].patches[-1]
    assert left.get_x() + left.get_width() == pytest.approx(0.3)


def test_select_examples_groups() -> None:
    v = np.array([5.0, 1.0, np.nan, 9.0, 3.0, 7.0, 2.0, 8.0, 6.0, 4.0, 0.0])
    picks = select_examples(v, k=3)
    order = sorted((x, i) for i, x in enumerate(v) if not math.isnan(x))  # 10 ranked
    pos = [i for _, i in order]
    assert [(g, r) for g, r, _ in picks] == [
        (g, r) for g in ("best", "median", "worst") for r in (1, 2, 3)
    ]
    assert [p for *_, p in picks] == pos[:3] + pos[3:6] + pos[::-1][:3]  # median around pos[4]
    assert 2 not in [p for *_, p in picks]
    # Higher is better (PSNR): the largest value is best.
    assert select_examples(v, k=1, higher_is_better=True) == [("best", 1, 3), ("median", 1, 0), ("worst", 1, 10)]  # fmt: skip
    # Small sets: no patch twice; the median group is the first to shrink.
    assert select_examples(np.array([2.0, 1.0]), k=3) == [("best", 1, 1), ("best", 2, 0)]
    four = select_examples(np.array([4.0, 3.0, 2.0, 1.0]), k=3)
    assert [(g, p) for g, _, p in four] == [("best", 3), ("best", 2), ("best", 1), ("worst", 0)]
    assert select_examples(np.array([np.nan, np.nan])) == []
    with pytest.raises(ValueError, match="k must be >= 1"):
        select_examples(v, k=0)


def test_pick_examples_reads_ids_and_rejects_bad_csv(tmp_path: Path) -> None:
    write_folder(tmp_path / "e", ["a", "b", "c"], [0.3, 0.1, 0.2], method="m")
    picks = pick_examples(tmp_path / "e" / "per_patch.csv", k=1)
    assert [(e.group, e.id, e.value, e.position) for e in picks] == [
        ("best", "b", 0.1, 1), ("median", "c", 0.2, 2), ("worst", "a", 0.3, 0),
    ]  # fmt: skip
    from cloudfree.errors import DataError

    (tmp_path / "bad.csv").write_text("id,mae\nx,abc\n")
    with pytest.raises(DataError, match="line 2: mae='abc' is not a number"):
        pick_examples(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="has no column psnr"):
        pick_examples(tmp_path / "bad.csv", rank_by="psnr")
