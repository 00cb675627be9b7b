"""`kptool detect` (being written)."""


def detect() -> None:
    """Detect keypoints."""
    raise NotImplementedError
