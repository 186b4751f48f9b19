#!/usr/bin/env bash
# Reproduce the bundled demonstration weights of cloudfree (src/cloudfree/predict/weights/):
# two small DSen2-CR models (SAR + CARL, no-SAR + CARL) trained with `cloudfree train` on
# simulated clouds over the real clear Sentinel-2 images of ../shared/data plus its real
# SEN12MS-CR cloudy/clear pairs, evaluated on held-apart scenes against identity and mask-fill.
#
# Usage: scripts/train_bundled.sh [SHARED_DATA_DIR] [WORK_DIR]
#   SHARED_DATA_DIR  default ../shared/data (the repo's real-sample folder, see its README.md)
#   WORK_DIR         default /tmp/bundled (data, packs, runs, evaluations; never the repo)
# Environment: EPOCHS_SAR (30), EPOCHS_NOSAR (10) training epochs; CLOUDFREE, PYTHON (default
#   the repo's .venv); INSTALL=1 writes the two best checkpoints to src/cloudfree/predict/weights/.
# Steps already done in WORK_DIR are skipped; an interrupted training run is resumed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="$(cd "${1:-$REPO/../shared/data}" && pwd)"
WORK="${2:-/tmp/bundled}"
CF="${CLOUDFREE:-$REPO/.venv/bin/cloudfree}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
SEEDS=(1 2 3)  # three independent cloud draws over every clear image

# Held-apart scenes (whole SEN12MS-CR scenes, so no source image is shared with training):
#   ROIs1158_spring 101 (4 clear patches), ROIs1868_summer 101 (3 real pairs), ROIs1970_fall 148
#   (1 real pair, water). Validation during training: ROIs2017_winter 112 (the real triplet).
HELD=("ROIs1158_spring 101" "ROIs1868_summer 101" "ROIs1970_fall 148")
VAL="ROIs2017_winter 112"

mkdir -p "$WORK"
cd "$WORK"

# 1. Synthetic clouds over the real clear images (256 x 256 tiles; SEN12MS-CR targets keep their
#    ids, sen1floods11 becomes scene 1000; eolearn (too small) and BigEarthNet (L2A, 12 bands)
#    are skipped by `synth` with a warning).
for s in "${SEEDS[@]}"; do
  [ -d "synth_s$s" ] || "$CF" synth "synth_s$s" --n 1000 --seed "$s" --clear-from "$SHARED"
done

# 2. Three dataset roots of symlinks in the release layout: train (+ val), held-apart synthetic,
#    held-apart real pairs. Seed k's patches are renumbered patch + 1000 k so that ids stay unique
#    (release patch numbers of the sample are < 1000).
"$PY" - "$SHARED" "$WORK" "$VAL" "${HELD[@]}" <<'PYEOF'
import re, sys
from pathlib import Path

shared, work, val = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
held = {tuple(h.split()) for h in sys.argv[4:]}
rx = re.compile(r"^(ROIs\d+_[a-z]+)_(s1|s2_cloudy|s2)_(\d+)_p(\d+)\.tif$")

def link(root: Path, roi: str, kind: str, scene: str, patch: int, src: Path) -> None:
    dst = root / f"{roi}_{kind}" / f"{kind}_{scene}" / f"{roi}_{kind}_{scene}_p{patch}.tif"
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        dst.symlink_to(src.resolve())

for k, synth in enumerate(sorted(work.glob("synth_s*")), start=1):
    for f in synth.glob("ROIs*/*/*.tif"):
        roi, kind, scene, patch = rx.match(f.name).groups()
        root = "test_synth" if (roi, scene) in held else "train"
        link(work / root, roi, kind, scene, int(patch) + 1000 * k, f)
for f in (shared / "sen12mscr").glob("ROIs*/*/*.tif"):
    roi, kind, scene, patch = rx.match(f.name).groups()
    root = "test_real" if (roi, scene) in held else "train"
    link(work / root, roi, kind, scene, int(patch), f)
split_lines = ["roi_season,scene,split", f"{val.split()[0]},{val.split()[1]},val"]
(work / "splits_train.csv").write_text("\n".join(split_lines) + "\n")
PYEOF

# 3. Index (train root: ROIs2017_winter 112 is "val", the rest "train"; held-apart roots: "test")
#    and pack with the cached DSen2-CR cloud mask (CARL needs it; computed once).
"$CF" index train --out train.csv --splits splits_train.csv
{ echo "roi_season,scene,split"; for h in "${HELD[@]}"; do echo "${h% *},${h#* },test"; done; } > splits_test.csv
for root in test_synth test_real; do
  "$CF" index "$root" --out "$root.csv" --splits splits_test.csv
done
[ -f pack_nosar/manifest.json ] || "$CF" pack train.csv --out pack_nosar --workers 2
[ -f pack_sar/manifest.json ] || "$CF" pack train.csv --out pack_sar --require s1,s2,s2_cloudy --workers 2

# 4. Train: the paper's CARL recipe on a small network (F=48 features, B=4 residual blocks,
#    ~180k parameters, 0.7 MB), 128 x 128 crops, batch 8, a higher constant learning rate than
#    the paper's 7e-5 because the budget is a few hundred steps on 2 CPU cores.
COMMON=(model.num_layers=4 model.feature_size=48 data.crop_size=128 data.num_workers=1
        train.batch_size=8 optim.lr=4e-4 train.log_every=20 train.out_dir="$WORK/runs"
        train.device=cpu train.seed=42)
train_run() {  # NAME PRESET EPOCHS PACK: train once; an interrupted run is resumed exactly
  local name=$1 preset=$2 epochs=$3 pack=$4
  [ -f "runs/$name.done" ] && return 0
  local args=("${COMMON[@]}" data.packed="$WORK/$pack" train.epochs="$epochs" train.run_name="$name")
  if [ -d "runs/$name/checkpoints" ]; then
    "$CF" train --resume "runs/$name" "${args[@]}"
  else
    "$CF" train --config "$preset" "${args[@]}"
  fi
  touch "runs/$name.done"
}
train_run sar dsen2cr_sar_carl "${EPOCHS_SAR:-30}" pack_sar
train_run nosar dsen2cr_nosar_carl "${EPOCHS_NOSAR:-10}" pack_nosar

# 5. Evaluate on the held-apart scenes (paper protocol): both models and both baselines on the
#    synthetic-cloud patches; the no-SAR model and the baselines on the real pairs (no S1 there).
for m in sar nosar identity mask-fill; do
  ck="$m"; [ -d "runs/$m" ] && ck="runs/$m/checkpoints/best"
  [ -f "eval/synth_$m/summary.json" ] ||
    "$CF" evaluate --checkpoint "$ck" --data test_synth.csv --split test --out "eval/synth_$m" --device cpu
  [ "$m" = sar ] || [ -f "eval/real_$m/summary.json" ] ||
    "$CF" evaluate --checkpoint "$ck" --data test_real.csv --split test --out "eval/real_$m" --device cpu
done
"$CF" compare eval/synth_* --no-published --out eval/synth.md
"$CF" compare eval/real_* --no-published --out eval/real.md

# 6. Install: rewrite each best checkpoint with save_weights (same tensors, model card metadata).
if [ "${INSTALL:-0}" = 1 ]; then
  "$PY" - "$WORK" "$REPO/src/cloudfree/predict/weights" <<'PYEOF'
import sys
from pathlib import Path

from cloudfree.models.weights import load_weights, save_weights

work, dest = Path(sys.argv[1]), Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
for run in ("sar", "nosar"):
    model = load_weights(work / "runs" / run / "checkpoints" / "best" / "model.safetensors")
    out = save_weights(
        model,
        dest / f"dsen2cr_demo_{run}.safetensors",
        metadata={
            "description": "cloudfree demonstration weights: NOT for real use (see MODEL_CARD.md)",
            "trained_with": "scripts/train_bundled.sh",
        },
    )
    print(f"wrote {out}")
PYEOF
fi
