"""Packed data: an index packed into memory-mapped shards (``cloudfree pack``), their manifest
and sources, the packed dataset, and the caches kept in the shards (masks, inpainting)."""
