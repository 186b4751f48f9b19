"""Training: optimiser, loop, checkpoints and distributed helpers (issue 4)."""
