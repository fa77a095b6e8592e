"""Tandem's ML core: preference pairs, losses, reward-model training and evaluation.

Nothing in this package imports Django (or ``annotation`` / ``training`` models). Django code calls it with plain
data — dataclasses, paths, config dataclasses — and gets plain results back, so every piece runs in a notebook and
in tests without a database. ``pairs`` and ``losses`` import no Hugging Face library either; ``reward`` and
``evaluate`` do, lazily where it keeps imports cheap.
"""
