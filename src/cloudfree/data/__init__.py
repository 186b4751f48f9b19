"""Data layer, by where the patches come from.

- :mod:`cloudfree.data.release`: the SEN12MS-CR release (discover, index, splits, check, the
  per-file dataset and its mask cache).
- :mod:`cloudfree.data.packed`: packed shards (pack, sources, manifest, the packed dataset,
  the mask and inpainting caches).
- :mod:`cloudfree.data.synthetic`: synthetic releases and scenes.
- :mod:`cloudfree.data.sentinel`: Sentinel products (SAFE stacking, the scene inputs of a
  prediction).

Shared by all: GeoTIFF I/O (:mod:`~cloudfree.io`), the DSen2-CR preprocessing
(:mod:`~cloudfree.data.preprocess`), sampling and augmentation (:mod:`~cloudfree.data.sample`,
:mod:`~cloudfree.data.transforms`), the datasets' base (:mod:`~cloudfree.data.dataset`) and
batching (:mod:`~cloudfree.data.collate`). Band constants live below them, in
:mod:`cloudfree.bands`.
"""
