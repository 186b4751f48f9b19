"""``benchmarks/gpu.sh --dry-run``: the prepared GPU measurement keeps running (tiny, on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CASES = ("train_step", "train_step_compiled", "loader", "train_loop", "evaluate", "predict")


@pytest.mark.slow
def test_gpu_script_dry_run_reports_every_case(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--dry-run", "--out", str(out),
         "--skip", "train_step_compiled"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip  # torch.compile needs a C compiler at run time: left to the GPU run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["dry_run"] is True and r["model"] == {"num_layers": 1, "feature_size": 8}
    for case in CASES:
        if case == "train_step_compiled":
            assert case not in r
            continue
        assert "error" not in r[case], r[case]
    step = r["train_step"]
    assert step["step_s"] > 0 and step["patches_per_s"] == 2 / step["step_s"]
    assert step["mfu_pct"] is None  # no GPU peak on a CPU
    # The 300 px scene in fp32 and bf16 (bf16 on CPU: slow, but it runs), then compared.
    assert r["predict"]["fp32"]["seconds"] > 0 and r["predict"]["bf16"]["tile"] >= 256
    assert 0 <= r["predict"]["bf16_vs_fp32_max_refl"] < 0.5
    assert r["evaluate"]["patches"] == 4 and r["train_loop"]["steps"] >= 1
    assert "train_step" in proc.stdout and "wrote" in proc.stdout  # the printed table
