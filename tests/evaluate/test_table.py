"""Table-1 layout, published rows, breakdowns and ``compare`` (issue 5, spec section 8)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cloudfree.errors import DataError
from cloudfree.evaluate.compare import run_compare_cli
from cloudfree.evaluate.table import (
    PUBLISHED,
    TABLE1_COLUMNS,
    breakdown,
    cloud_bin,
    compare,
    format_table,
    read_summary,
)

NAN = float("nan")
HEADER = (
    "| Method | MAE target | MAE reprod | MAE recon | RMSE | PSNR (dB) | SAM target (°) "
    "| SAM reprod (°) | SAM recon (°) | SSIM |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
)


def test_columns_in_paper_order() -> None:
    assert TABLE1_COLUMNS == (
        "mae",
        "mae_reprod",
        "mae_recon",
        "rmse",
        "psnr",
        "sam",
        "sam_reprod",
        "sam_recon",
        "ssim",
    )


def test_format_table_against_hand_written_markdown() -> None:
    rows = [
        (
            "ours",
            {
                "mae": 0.028951,
                "mae_reprod": 0.02,
                "mae_recon": NAN,
                "rmse": 0.036649,
                "psnr": 28.7049,
                "sam": 8.154,
                "sam_reprod": 3.9449,
                "sam_recon": 8.0,
                "ssim": 0.87549,
                "cloud_fraction": 0.3,  # not a table column: ignored
            },
        ),
        ("identity", {"mae": 0.1, "psnr": math.inf, "ssim": 1.0}),
    ]
    expected = HEADER + (
        "| ours | 0.0290 | 0.0200 | n/a | 0.0366 | 28.70 | 8.15 | 3.94 | 8.00 | 0.875 |\n"
        "| identity | 0.1000 | – | – | – | inf | – | – | – | 1.000 |\n"
    )
    assert format_table(rows) == expected


def test_format_table_reference_marks_rows_and_count_column() -> None:
    text = format_table([("a|b", {"mae": 0.5, "count": 3.0}), ("c", {})], reference=True)
    lines = text.splitlines()
    assert lines[0].endswith("| SSIM | n |")
    assert lines[1].endswith("|---:|---:|")
    assert lines[2] == "| (published) a\\|b | 0.5000 | – | – | – | – | – | – | – | – | 3 |"
    assert lines[3] == "| (published) c | – | – | – | – | – | – | – | – | – | – |"


def test_published_paper_rows_match_spec_section_8() -> None:
    paper = {k: v for k, v in PUBLISHED.items() if v["protocol"] == "paper"}
    assert list(paper) == [
        "DSen2-CR, L_CARL",
        "DSen2-CR, L_T",
        "DSen2-CR, L_CARL, no SAR",
        "DSen2-CR, L_T, no SAR",
        "pix2pix",
    ]
    carl = paper["DSen2-CR, L_CARL"]["values"]
    assert carl["mae"] == 0.0290 and carl["psnr"] == 28.7
    assert (carl["mae_reprod"], carl["mae_recon"], carl["rmse"]) == (0.0204, 0.0266, 0.0366)
    assert (carl["sam"], carl["sam_reprod"], carl["sam_recon"], carl["ssim"]) == (
        8.15,
        3.94,
        8.04,
        0.875,
    )
    assert paper["DSen2-CR, L_T"]["values"]["mae_reprod"] == 0.0398
    assert paper["DSen2-CR, L_T, no SAR"]["values"]["sam_recon"] == 9.05
    assert paper["pix2pix"]["values"]["sam"] == 13.68
    for ref in paper.values():
        assert set(ref["values"]) == set(TABLE1_COLUMNS)
        assert "WGS84" in ref["note"] and "own split" in ref["note"]
        assert "Meraner" in ref["source"]


def test_published_leaderboard_rows() -> None:
    board = {k: v for k, v in PUBLISHED.items() if v["protocol"] == "leaderboard"}
    names = " ".join(board)
    for method in ("DSen2-CR", "GLF-CR", "UnCRtainTS", "ACA-Net", "DiffCR", "EMRDM", "ECRformer"):
        assert method in names
    dsen2cr = board["DSen2-CR (2020), re-evaluated"]["values"]
    assert dsen2cr == {"mae": 0.031, "sam": 9.472, "psnr": 27.76, "ssim": 0.874}
    assert board["ECRformer (2026)"]["values"]["psnr"] == 33.37
    for ref in board.values():
        assert set(ref["values"]) == {"mae", "sam", "psnr", "ssim"}  # the leaderboard has no RMSE
        assert "leaderboard" in ref["source"]


def _patch(season: str, cloud: float, mae: float, recon: float, psnr: float) -> dict:
    return {"season": season, "cloud_fraction": cloud, "mae": mae, "mae_recon": recon, "psnr": psnr}


PATCHES = [
    _patch("summer", 0.0, 0.10, NAN, 20.0),  # cloud-free: recon undefined
    _patch("spring", 0.10, 0.20, 0.40, 30.0),
    _patch("summer", 0.25, 0.30, 0.50, NAN),
    _patch("winter", 0.60, 0.40, 0.60, 40.0),
    _patch("spring", 1.0, 0.50, 0.70, 50.0),
]


def test_breakdown_by_season_nan_aware() -> None:
    groups = breakdown(PATCHES, "season")
    assert [g for g, _ in groups] == ["spring", "summer", "winter"]
    spring, summer, winter = (v for _, v in groups)
    assert spring["count"] == 2 and spring["mae"] == pytest.approx(0.35)
    assert spring["mae_recon"] == pytest.approx(0.55) and spring["psnr"] == pytest.approx(40.0)
    # summer: recon NaN in one patch and psnr NaN in the other are skipped, not counted as 0
    assert summer["count"] == 2 and summer["mae"] == pytest.approx(0.20)
    assert summer["mae_recon"] == pytest.approx(0.50) and summer["psnr"] == pytest.approx(20.0)
    assert winter["count"] == 1 and winter["mae"] == pytest.approx(0.40)
    assert "rmse" not in spring  # no patch has it: absent, shown "–"


def test_breakdown_by_cloud_bin_edges_and_strings() -> None:
    # per_patch.csv rows carry strings; "" is an undefined value
    rows = [
        {k: ("" if isinstance(v, float) and math.isnan(v) else str(v)) for k, v in p.items()}
        for p in PATCHES
    ]
    groups = dict(breakdown(rows, "cloud_bin"))
    assert list(groups) == ["0-10 %", "10-30 %", "30-60 %", "60-100 %"]
    assert groups["0-10 %"]["count"] == 1  # 0 % is in the first bin
    assert math.isnan(groups["0-10 %"]["mae_recon"])  # only a cloud-free patch: stays NaN
    assert groups["10-30 %"]["count"] == 2  # 10 % opens the second bin
    assert groups["10-30 %"]["mae"] == pytest.approx(0.25)
    assert groups["30-60 %"]["count"] == 0 and math.isnan(groups["30-60 %"]["mae"])
    assert groups["60-100 %"]["count"] == 2  # 60 % and 100 % (fully covered)
    assert groups["60-100 %"]["mae_recon"] == pytest.approx(0.65)
    table = format_table(list(groups.items()))
    assert "| 30-60 % | n/a | – | n/a | – | n/a | – | – | – | – | 0 |" in table


def test_breakdown_bad_input() -> None:
    with pytest.raises(DataError, match="outside"):
        cloud_bin(1.5)
    with pytest.raises(DataError, match="outside"):
        breakdown([{"cloud_fraction": "", "mae": 0.1}], "cloud_bin")
    with pytest.raises(DataError, match="season"):
        breakdown([{"mae": 0.1}], "season")
    with pytest.raises(ValueError, match="cloud_bin"):
        breakdown(PATCHES, "scene")


def _write_eval(folder: Path, method: str, protocol: str, mae: float, count: int) -> Path:
    folder.mkdir(parents=True)
    summary = {
        "method": method,
        "protocol": protocol,
        "split": "test",
        "metrics": {
            "mae": mae,
            "rmse": 0.04,
            "psnr": 27.5,
            "mae_recon": None,
            "count": float(count),
        },
        "count": count,
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def test_compare_same_protocol(tmp_path: Path) -> None:
    a = _write_eval(tmp_path / "a", "identity", "paper", 0.05, 10)
    b = _write_eval(tmp_path / "b", "mask-fill", "paper", 0.04, 10)
    text = compare([a, b])
    lines = text.splitlines()
    assert (
        lines[2]
        # Paper protocol: PSNR from the mean RMSE, 20 log10(1 / 0.04) = 27.96, not the 27.5
        # mean of per-patch PSNRs (a summary written before psnr_mean_rmse was recorded).
        == "| identity (paper, test, n=10) | 0.0500 | – | n/a | 0.0400 | 27.96 | – | – | – | – |"
    )
    assert lines[3].startswith("| mask-fill (paper, test, n=10) | 0.0400 |")
    assert lines[4] == (
        "| (published) DSen2-CR, L_CARL [paper Table 1] | 0.0290 | 0.0204 | 0.0266 | 0.0366 "
        "| 28.70 | 8.15 | 3.94 | 8.04 | 0.875 |"
    )
    assert sum(ln.startswith("| (published)") and "[paper Table 1]" in ln for ln in lines) == 5
    assert "leaderboard]" not in text  # other protocol's numbers are not shown
    assert "not comparable" not in text
    assert "WGS84" in text  # the source note under the table
    assert "| n |" not in lines[0]  # the count is in the name, not a column

    bare = compare([a, b], include_published=False)
    assert "(published)" not in bare and len(bare.split("\n\n")[0].splitlines()) == 4
    assert "– = not reported" in bare


def test_compare_protocol_mismatch(tmp_path: Path) -> None:
    a = _write_eval(tmp_path / "a", "identity", "paper", 0.05, 10)
    b = _write_eval(tmp_path / "b", "identity", "leaderboard", 0.01, 7)
    text = compare([a, b])
    assert "identity (leaderboard, test, n=7)" in text
    assert "different protocols (paper, leaderboard)" in text
    assert "not comparable" in text
    assert "(published) DSen2-CR (2020), re-evaluated [SEN12MS-CR leaderboard]" in text
    assert "(published) pix2pix [paper Table 1]" in text


def test_run_compare_cli_writes_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write_eval(tmp_path / "a", "identity", "leaderboard", 0.05, 3)
    out = tmp_path / "reports" / "compare.md"
    assert run_compare_cli([str(a)], str(out), include_published=True) == 0
    printed = capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == printed
    assert "identity (leaderboard, test, n=3)" in printed
    assert "27.76" in printed
    assert [p.name for p in out.parent.iterdir()] == ["compare.md"]  # no temporary left


def test_compare_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="has no summary.json") as info:
        compare([empty])
    assert str(empty) in str(info.value) and "cloudfree evaluate" in str(info.value)
    with pytest.raises(DataError, match="not a folder"):
        run_compare_cli([str(tmp_path / "missing")], None, include_published=True)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text('{"method": "x", "protocol": "paper"}', encoding="utf-8")
    with pytest.raises(DataError, match="'split'"):
        read_summary(bad)
    (bad / "summary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="JSON"):
        read_summary(bad)
    with pytest.raises(ValueError, match="at least one"):
        compare([])
