"""The SEN12MS-CR release as published: find its files, index them, split them, check them,
and read them as a PyTorch dataset (with its mask cache beside the index)."""
