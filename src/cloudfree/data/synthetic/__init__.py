"""Synthetic data: a small SEN12MS-CR-like release and whole scenes with simulated clouds, for
tests, the demo and benchmarks."""
