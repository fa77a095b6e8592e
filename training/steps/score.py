"""Step score (being written)."""


def run(ctx) -> None:
    raise NotImplementedError
