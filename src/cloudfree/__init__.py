"""cloudfree: cloud removal for Sentinel-2 with Sentinel-1 SAR fusion (DSen2-CR and beyond).

Nothing happens at import time: submodules are imported where they are used.
"""

__version__ = "0.1.0"
