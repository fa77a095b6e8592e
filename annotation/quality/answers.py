"""What an answer chose, read the same way by the quality figures and the position checks (a module of its own:
the checks run inside the queue, which the figures' module must not pull in)."""

from __future__ import annotations

TIE = "tie"


def answer_choice(winner_id, tie, ranking):
    """What an answer chose: the winner's candidate id, the top of a ranking, or ``TIE``."""
    if tie:
        return TIE
    return winner_id if winner_id is not None else (ranking[0] if ranking else None)
