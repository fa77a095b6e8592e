"""Kept so ``training.ml.stats`` imports keep working; the statistics live in :mod:`preference.stats`."""

from preference.stats import wilson_interval

__all__ = ["wilson_interval"]
