"""Data layer: band constants, GeoTIFF I/O, the SEN12MS-CR index, datasets, packed shards."""
