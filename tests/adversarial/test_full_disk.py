"""Issue 30, class 2: a full disk is an error, never "wrote".

Every write is checked to be complete before it is renamed into place (GDAL reports a failed
flush at close only in its log): the command exits 1 with "no space left on device while
writing OUT", names the output (not its hidden temporary name), and leaves nothing behind.
The disk is a small tmpfs, mounted where the machine allows it (root, or a container with
CAP_SYS_ADMIN); the completeness check itself is tested everywhere."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudfree.data.release.discover import build_index
from cloudfree.data.release.index import write_index
from cloudfree.data.synthetic.release import synthesize
from cloudfree.io import WriteError, atomic_path, check_complete_raster
from tests.predict.conftest import synth_s2, write_tif

from .conftest import digest, fails


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 KiB tmpfs: any output larger than a page fills it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(disk)],
                           capture_output=True, text=True)  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mount.stderr.strip()}): needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("full")
    s2 = write_tif(base / "s2.tif", synth_s2(256, 256))
    synthesize(base / "root", n=12, seed=0, size=32)
    index = write_index(build_index(base / "root"), base / "index.csv")
    return {"base": base, "s2": s2, "root": base / "root", "index": index}


def test_every_command_says_the_disk_is_full_and_leaves_nothing(
    full_disk: Path, data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.data.sentinel.test_safe import make_l1c

    safe = make_l1c(tmp_path / "safe")
    before = digest(data["base"])
    s2, root, disk = str(data["s2"]), str(data["root"]), full_disk
    cases = {
        "m.tif": ["mask", s2, "--out", str(disk / "m.tif"), "--mask-backend", "dsen2cr"],
        "p.tif": ["predict", "--s2", s2, "--out", str(disk / "p.tif"), "--checkpoint",
                  "identity", "--no-progress"],
        "i.tif": ["inpaint", s2, "--out", str(disk / "i.tif"), "--no-progress"],
        "stack.tif": ["stack", str(safe), "--out", str(disk / "stack.tif"), "--quiet"],
        "index.csv": ["index", root, "--out", str(disk / "index.csv")],
        "packed": ["pack", str(data["index"]), "--out", str(disk / "packed"), "--workers", "0"],
        "ev": ["evaluate", "--checkpoint", "identity", "--data", root, "--split", "all",
               "--out", str(disk / "ev")],
        "syn": ["synth", str(disk / "syn"), "--n", "2", "--size", "32"],
        "runs": ["train", "--config", "debug_tiny", f"data.index={data['index']}",
                 f"train.out_dir={disk / 'runs'}", "train.epochs=1"],
    }  # fmt: skip
    for name, argv in cases.items():
        # The output, or a file of it (index.summary.json, packed/shard-0000.npy...).
        err = fails(argv, capsys, "no space left on device while writing",
                    str(disk / Path(name).stem))  # fmt: skip
        assert ".part" not in err, err
        left = [p.name for p in disk.rglob("*") if p.is_file()]
        assert left == [], (argv[0], left)
    assert digest(data["base"]) == before


def test_an_incomplete_geotiff_is_never_renamed_into_place(tmp_path: Path) -> None:
    s2 = write_tif(tmp_path / "s2.tif", synth_s2(64, 64))
    check_complete_raster(s2)  # a complete file passes
    out = tmp_path / "out.tif"
    with pytest.raises(WriteError, match=f"writing {out} failed"), atomic_path(out) as tmp:
        tmp.write_bytes(s2.read_bytes()[: s2.stat().st_size // 2])  # as a disk that filled
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2.tif"]
