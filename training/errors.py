"""Why a round cannot be started or changed: errors whose ``message`` is for a person (the API returns it)."""

from __future__ import annotations


class RoundError(Exception):
    """A round cannot be started or changed as asked; ``message`` says why, for a person."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


class RoundAlreadyRunning(RoundError):
    def __init__(self, live):
        self.round = live
        super().__init__(f"Round {live.pk} of this project is still {live.status}; wait for it to finish or cancel it.")


class NothingToTrain(RoundError):
    pass


class RoundNotCancellable(RoundError):
    pass
