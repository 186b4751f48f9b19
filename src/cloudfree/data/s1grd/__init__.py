"""Sentinel-1 GRD products to sigma0 dB on a Sentinel-2 grid, as Earth Engine's
``COPERNICUS/S1_GRD`` (``cloudfree s1``); extra ``[s1]``: xarray-sentinel, sarsen."""
