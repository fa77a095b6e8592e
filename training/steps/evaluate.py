"""Step evaluate (being written)."""


def run(ctx) -> None:
    raise NotImplementedError
