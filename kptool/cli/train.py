"""`kptool train` (being written)."""


def train() -> None:
    """Train a keypoint detector from a preset."""
    raise NotImplementedError
