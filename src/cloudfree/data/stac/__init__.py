"""Sentinel-2 (and Sentinel-1) from STAC catalogues into series folders (``cloudfree fetch``);
extra ``[stac]``: pystac-client, odc-stac, planetary-computer, distributed."""
