"""Sentinel products: a Sentinel-2 .SAFE stacked into the 13-band GeoTIFF (``cloudfree stack``)
and the S2/S1 scenes a whole-scene prediction reads, window by window."""
