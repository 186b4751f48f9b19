"""Networks, their registry and their weight files.

Importing this package registers the built-in models (``"dsen2cr"``, ``"dsen2cr-nosar"``, the
hybrid ``"hybrid"``, ``"hybrid-nosar"`` (DSen2-CR on the inpainted image, issue 11), and the
pix2pix baseline's generators ``"pix2pix"``, ``"pix2pix-nosar"``, and UnCRtainTS
``"uncrtaints"``, ``"uncrtaints-nosar"`` (issue 14), multi-temporal UnCRtainTS
``"uncrtaints-mt"``, ``"uncrtaints-mt-nosar"`` (issue 31) and nothing else: h5py (Keras
import) and safetensors are imported only when used.
"""

from cloudfree.models.dsen2cr import DSen2CR, DSen2CRConfig
from cloudfree.models.hybrid import HybridConfig, HybridDSen2CR
from cloudfree.models.pix2pix import PatchGANDiscriminator, Pix2PixConfig, Pix2PixGenerator
from cloudfree.models.registry import build_model, list_models, register_model
from cloudfree.models.uncrtaints import UnCRtainTS, UnCRtainTSConfig
from cloudfree.models.uncrtaints_mt import UnCRtainTSMT, UnCRtainTSMTConfig
from cloudfree.models.weights import load_state, load_weights, save_weights

__all__ = [
    "DSen2CR",
    "DSen2CRConfig",
    "HybridConfig",
    "HybridDSen2CR",
    "PatchGANDiscriminator",
    "Pix2PixConfig",
    "Pix2PixGenerator",
    "build_model",
    "list_models",
    "load_state",
    "load_weights",
    "register_model",
    "save_weights",
    "UnCRtainTS",
    "UnCRtainTSConfig",
    "UnCRtainTSMT",
    "UnCRtainTSMTConfig",
]
