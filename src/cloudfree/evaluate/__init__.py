"""Evaluation: protocols, methods and baselines, metric tables (issue 5)."""
