"""Small statistics with no dependencies, shared by the ML core and the web side (which has no torch); here
because annotation may not import training (DESIGN §2)."""

from __future__ import annotations

import math


def wilson_interval(wins: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion wins / n (Wilson 1927; Newcombe 1998, method 3). ``wins`` may be
    fractional (ties counted as half). Unlike p ± z·se it stays inside [0, 1] and is sensible at 0 or n wins.

    >>> tuple(round(x, 4) for x in wilson_interval(81, 263))  # Newcombe (1998), Table II
    (0.2553, 0.3662)
    """
    if n <= 0:
        raise ValueError("the interval needs n >= 1")
    if not 0 <= wins <= n:
        raise ValueError(f"wins must be in [0, n], got {wins} of {n}")
    p = wins / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)
