"""Shared fixtures: tiny models built on the fly, test signals, and the corpora when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture
def datasets_dir() -> Path:
    """``../shared/datasets`` beside the repository; tests using it skip when it is absent."""
    if not DATASETS.is_dir():
        pytest.skip("../shared/datasets is not present")
    return DATASETS


def voiced(seconds: float = 2.0, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A speech-like float32 test signal: a gliding harmonic tone with some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 60 * rng.random() + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) + 0.05 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A valid MFCC-input model with emotion and gender heads (window 1 s, hop 0.5 s)."""
    from tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def waveform_model(tmp_path_factory) -> Path:
    """A valid waveform-input model with only an emotion head."""
    from tiny_models import build_tiny_model, make_contract

    from edge_ser.frontend import FrontEnd

    contract = make_contract(FrontEnd("waveform"), heads={"emotion": ("calm", "excited")})
    return build_tiny_model(tmp_path_factory.mktemp("models") / "wave.onnx", contract)
