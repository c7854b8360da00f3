"""Shared fixtures: the real corpora in ``../shared/datasets`` when present, and the ``corpus`` marker."""

from __future__ import annotations

from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "corpus: needs ../shared/datasets (skipped when absent)")


@pytest.fixture
def datasets_dir() -> Path:
    """``../shared/datasets`` beside the repository; tests using it skip when it is absent."""
    if not DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present")
    return DATASETS
