"""Whole-scene cloud removal: GeoTIFF in, georeferenced GeoTIFF out, in windows, any size."""
