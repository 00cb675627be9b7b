"""`kptool info` (being written)."""


def info() -> None:
    """Summarise a prepared dataset."""
    raise NotImplementedError
