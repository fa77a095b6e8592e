"""Step generate (being written)."""


def run(ctx) -> None:
    raise NotImplementedError
