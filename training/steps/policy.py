"""Step policy (being written)."""


def run(ctx) -> None:
    raise NotImplementedError
