"""The C99 front-end (firmware/) against edge_ser.frontend, built under ASan + UBSan.

Golden features are computed here by numpy at test time; the C output must stay within
1e-4 (absolute) of them after normalization. Bad input to the C API must return error
codes (firmware/tests/test_errors.c).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import voiced
from firmware_build import build, c_features, contract_json

from edge_ser.audio import load_audio, read_audio
from edge_ser.contract import ModelContract
from edge_ser.frontend import FrontEnd, Normalization
from edge_ser.model import resolve, shipped_models
from edge_ser.resample import resample

TOLERANCE = 1e-4
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("fw-host")) / "esr_features"


def shipped_contracts() -> dict[str, str]:
    """The shipped models with a front-end outside the graph (the base tier takes the waveform itself)."""
    contracts = {name: contract_json(resolve(name)) for name in shipped_models()}
    return {name: c for name, c in contracts.items() if json.loads(c)["frontend"]["kind"] != "waveform"}


def _contract(frontend: FrontEnd, normalization: Normalization) -> dict:
    heads = [{"name": "emotion", "output": "y", "labels": ["a", "b"]}]
    return {
        "schema_version": 1,
        "name": "t",
        "input": {"kind": "features", "name": "x"},
        "sample_rate": frontend.sample_rate,
        "frontend": frontend.to_dict(),
        "normalization": normalization.to_dict(),
        "window": {"seconds": 3.0, "hop_seconds": 1.0, "min_seconds": 0.25},
        "heads": heads,
        "parameters": 1,
    }


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "voiced": voiced(1.3, seed=1),
        "noise": (0.1 * rng.standard_normal(9000)).astype(np.float32),
        "silence-then-voice": np.concatenate([np.zeros(3000, np.float32), voiced(0.5, seed=2)]),
        "shorter-than-a-frame": voiced(0.02, seed=3),
    }


FRONTENDS = {
    "mfcc-default": FrontEnd(),
    "mfcc-hamming-640-band": FrontEnd(n_fft=640, window="hamming", low_freq=100.0, high_freq=6000.0, lifter=0.0),
    "mfcc-no-energy-8k": FrontEnd(sample_rate=8000, n_fft=256, append_energy=False, preemph=0.0),
    "logmel-hann": FrontEnd("logmel", window="hann", n_mels=64),
    "logmel-1024": FrontEnd("logmel", window="hamming", n_fft=1024, n_mels=40),
    "logspec": FrontEnd("logspec", n_fft=400),
    "functionals": FrontEnd("functionals", n_mels=40, n_mfcc=40),
}


@pytest.mark.parametrize("name", sorted(FRONTENDS))
def test_generated_signals_match_numpy(tool: Path, tmp_path: Path, name: str) -> None:
    fe = FRONTENDS[name]
    for label, x in _signals().items():
        ref = fe(x)
        # statistics of this very output, so every feature is compared on the scale of its spread
        width = ref.shape[1]
        norm = Normalization.fit([ref]) if len(ref) > 1 else Normalization("global", (0.0,) * width, (1.0,) * width)
        got = c_features(tool, _contract(fe, norm), x, tmp_path)
        assert got.shape == ref.shape, label
        err = np.abs(got - norm(ref)).max()
        assert err <= TOLERANCE, f"{name} on {label}: max abs error {err:.3g} after normalization"


def test_digital_silence_gives_the_log_floor(tool: Path, tmp_path: Path) -> None:
    fe = FrontEnd("logmel", n_mels=26)
    got = c_features(tool, _contract(fe, Normalization()), np.zeros(1600, np.float32), tmp_path, normalize=False)
    np.testing.assert_allclose(got, fe(np.zeros(1600, np.float32)), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got, np.log(np.finfo(float).eps), rtol=0, atol=TOLERANCE)  # the floor, not -inf


def test_resampler_matches_numpy(tool: Path, tmp_path: Path) -> None:
    """22.05 kHz and 48 kHz audio resampled in C, then the same features as resample + numpy."""
    fe = FrontEnd("logmel", n_mels=26)
    contract = _contract(fe, Normalization())
    for rate in (22050, 48000, 8000):
        x = voiced(0.7, rate=rate, seed=rate)
        ref = fe(resample(x, rate, 16000))
        got = c_features(tool, contract, x, tmp_path, normalize=False, rate=rate)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= TOLERANCE, rate


def test_shipped_frontends_on_the_examples(tool: Path, tmp_path: Path) -> None:
    """Every shipped model's front-end + normalization, on the repository's example clips."""
    for name, text in shipped_contracts().items():
        contract = ModelContract.from_json(text)
        for wav in sorted((ROOT / "examples").glob("*.wav")):
            raw, rate = read_audio(wav)
            window = int(contract.window_seconds * rate)
            ref = contract.normalize(contract.frontend(resample(raw[:window], rate, contract.sample_rate)))
            got = c_features(tool, text, raw[:window], tmp_path, rate=rate)
            err = np.abs(got - ref).max()
            assert err <= TOLERANCE, f"{name} on {wav.name}: {err:.3g}"


@pytest.mark.corpus
def test_shipped_frontends_on_corpus_clips(tool: Path, tmp_path: Path, datasets_dir: Path) -> None:
    """Real recordings (two per corpus), each shipped front-end over one analysis window."""
    clips = []
    for corpus, pattern in (("casia", "**/*.wav"), ("ravdess", "**/*.wav"), ("emodb", "*.flac")):
        clips += sorted((datasets_dir / corpus).glob(pattern))[:2]
    assert clips
    for name, text in shipped_contracts().items():
        contract = ModelContract.from_json(text)
        for clip in clips:
            x, _ = load_audio(clip, target_rate=contract.sample_rate)
            x = x[: int(contract.window_seconds * contract.sample_rate)]
            ref = contract.normalize(contract.frontend(x))
            err = np.abs(c_features(tool, text, x, tmp_path) - ref).max()
            assert err <= TOLERANCE, f"{name} on {clip.name}: {err:.3g}"


def test_c_api_rejects_bad_input(tool: Path) -> None:
    """NULL buffers, wrong sizes, bad configurations and unreadable WAVs give error codes."""
    done = subprocess.run([str(tool.parent / "test_errors")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout


def test_unreadable_contract_is_an_error(tool: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"schema_version": 1, "frontend": ')
    np.zeros(800, np.float32).tofile(tmp_path / "x.f32")
    done = subprocess.run(
        [str(tool), str(tmp_path / "bad.json"), str(tmp_path / "x.f32"), str(tmp_path / "y.f32")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "unreadable data format" in done.stderr
