"""Step push (being written)."""


def run(ctx) -> None:
    raise NotImplementedError
