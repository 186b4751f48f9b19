"""Cloud and cloud-shadow masks.

- :func:`mask_scene`: the mask of a whole GeoTIFF scene, in windows, written as a GeoTIFF, by the
  masker of every whole-scene command (:mod:`cloudfree.masks.backends`: ukis-csmask's CNN where
  installed, the DSen2-CR mask, s2cloudless), grown by a distance on the ground;
  :func:`mask_array` the same for an image held in memory.
- :func:`cloud_shadow_mask`: the DSen2-CR mask (Meraner et al. 2020, spec section 3) of an image
  or a batch, vectorised; equal pixel for pixel to the plain scipy transcription in
  :mod:`cloudfree.masks.reference`. What training, CARL and the paper's evaluation use.
- :func:`s2cloudless_mask`: optional backend (``pip install "cloudfree[masks]"``), clouds only.
- :func:`binary_mask`: cloud or shadow -> 1, as the CARL loss and the metrics use the mask.

Nothing heavy is imported here: onnxruntime and the models load on first use.
"""

from cloudfree.masks.csm import binary_mask, cloud_score, cloud_shadow_mask
from cloudfree.masks.params import CLEAR, CLOUD, SHADOW, CSMParams
from cloudfree.masks.s2cloudless import s2cloudless_mask
from cloudfree.masks.scene import mask_array, mask_scene, run_mask_cli
from cloudfree.masks.stats import ShadowStats

__all__ = [
    "CLEAR",
    "CLOUD",
    "SHADOW",
    "CSMParams",
    "ShadowStats",
    "binary_mask",
    "cloud_score",
    "cloud_shadow_mask",
    "mask_array",
    "mask_scene",
    "run_mask_cli",
    "s2cloudless_mask",
]
