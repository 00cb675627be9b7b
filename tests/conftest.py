"""Shared test fixtures.

Real sample data lives outside the project (``../shared/data`` beside the
checkout, or wherever ``KPTOOL_TEST_DATA`` points); tests that need it skip with
a clear reason when it is absent, as on a user's fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("KPTOOL_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real sample data not found at {root} (set KPTOOL_TEST_DATA to its folder)")
    return root


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


requires_cuda = pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA device")
