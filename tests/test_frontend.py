"""Front-ends: parity with python_speech_features, shapes, and the contract round trip."""

import numpy as np
import pytest
from conftest import voiced

from edge_ser.errors import AudioError, ContractError
from edge_ser.frontend import N_FUNCTIONALS, FrontEnd, Normalization, dct_matrix, functionals, mel_filterbank

psf = pytest.importorskip("python_speech_features")  # needs scipy (dev extra)


def signal_with_silence(n: int = 48000) -> np.ndarray:
    x = voiced(n / 16000).astype(np.float64)
    x[8000:9000] = 0.0  # exact zeros: psf floors empty bands at eps
    return x


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"n_mfcc": 20, "n_mels": 40, "lifter": 0, "append_energy": False},
        {"window": "hamming", "preemph": 0.0, "n_fft": 1024, "high_freq": 6000, "low_freq": 100},
        {"win_length": 0.032, "hop_length": 0.016},
    ],
)
def test_mfcc_matches_python_speech_features(params):
    x = signal_with_silence()
    fe = FrontEnd("mfcc", **params)
    ours = fe(x.astype(np.float32))
    ref = psf.mfcc(
        x.astype(np.float32).astype(np.float64),
        samplerate=16000,
        winlen=fe.win_length,
        winstep=fe.hop_length,
        numcep=fe.n_mfcc,
        nfilt=fe.n_mels,
        nfft=fe.n_fft,
        lowfreq=fe.low_freq,
        highfreq=fe.high_freq,
        preemph=fe.preemph,
        ceplifter=fe.lifter,
        appendEnergy=fe.append_energy,
        winfunc={"rect": lambda n: np.ones(n), "hamming": np.hamming}[fe.window],
    )
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)


def test_logmel_matches_python_speech_features_fbank():
    x = signal_with_silence()
    fe = FrontEnd("logmel", n_mels=40, window="hann")
    ref = np.log(psf.fbank(x.astype(np.float32).astype(np.float64), nfilt=40, winfunc=np.hanning)[0])
    np.testing.assert_allclose(fe(x.astype(np.float32)), ref, rtol=1e-5, atol=1e-3)


def test_logspec_is_log_of_python_speech_features_power_spectrum():
    from python_speech_features import sigproc

    x = voiced(1.0).astype(np.float64)
    fe = FrontEnd("logspec", window="hann", preemph=0.0)
    frames = sigproc.framesig(x, fe.frame_length, fe.frame_step, np.hanning)
    ref = np.log(sigproc.powspec(frames, fe.n_fft))
    np.testing.assert_allclose(fe(x.astype(np.float32)), ref, rtol=1e-5, atol=1e-3)


def test_filterbank_and_dct_match_reference():
    np.testing.assert_allclose(mel_filterbank(26, 512, 16000), psf.get_filterbanks(26, 512, 16000), atol=1e-12)
    from scipy.fftpack import dct

    x = np.random.default_rng(1).standard_normal((5, 26))
    np.testing.assert_allclose(x @ dct_matrix(26, 13), dct(x, type=2, axis=1, norm="ortho")[:, :13], atol=1e-10)


@pytest.mark.parametrize("n", [1, 399, 400, 401, 560, 48000])
def test_frame_count_follows_padding_rule(n):
    fe = FrontEnd("mfcc")
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    out = fe(x)
    assert out.shape == (fe.num_frames(n), 13)
    assert out.shape[0] == psf.mfcc(x.astype(np.float64)).shape[0]
    assert np.isfinite(out).all()


def test_outputs_do_not_alias_reused_buffers():
    fe = FrontEnd("logspec")
    a = fe(voiced(1.0, seed=1))
    a_copy = a.copy()
    fe(voiced(1.0, seed=2))
    np.testing.assert_array_equal(a, a_copy)


def test_feature_sizes_and_waveform_passthrough():
    assert FrontEnd("logspec", n_fft=512).n_features == 257
    assert FrontEnd("logmel", n_mels=64).n_features == 64
    wave = FrontEnd("waveform")
    x = voiced(0.5)
    np.testing.assert_array_equal(wave(x), x)
    assert wave.n_features is None


def test_spec_round_trip_and_validation():
    fe = FrontEnd("logmel", n_mels=40, window="hamming")
    assert FrontEnd.from_dict(fe.to_dict()) == fe
    assert set(FrontEnd("waveform").to_dict()) == {"kind", "sample_rate"}
    with pytest.raises(ContractError, match="does not take"):
        FrontEnd.from_dict({"kind": "logspec", "n_mfcc": 13})
    with pytest.raises(ContractError, match="unknown front-end kind"):
        FrontEnd.from_dict({"kind": "chroma"})
    with pytest.raises(ContractError, match="n_fft"):
        FrontEnd("mfcc", n_fft=256)
    with pytest.raises(AudioError):
        FrontEnd("mfcc")(np.zeros((2, 100), np.float32))


def test_normalization_modes():
    feats = [np.random.default_rng(i).normal(3.0, 2.0, (50, 4)).astype(np.float32) for i in range(3)]
    g = Normalization.fit(feats)
    out = np.concatenate([g(f) for f in feats])
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-4)
    assert Normalization.from_dict(g.to_dict()) == g
    u = Normalization("utterance")(feats[0])
    np.testing.assert_allclose(u.mean(axis=0), 0, atol=1e-5)
    with pytest.raises(ContractError):
        Normalization("global", (0.0,), (0.0,))
    with pytest.raises(ContractError):
        Normalization("zscore")


def test_functionals_by_hand():
    frames = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    out = functionals(frames).reshape(N_FUNCTIONALS, 2)
    np.testing.assert_allclose(out[0], [2.0, 2.0])  # mean
    np.testing.assert_allclose(out[1], frames.std(0), rtol=1e-6)
    np.testing.assert_allclose(out[2], [0.0, 1.0])  # min
    np.testing.assert_allclose(out[3], [4.0, 4.0])  # max
    np.testing.assert_allclose(out[4], [0.4, 1.0])  # 10th percentile (linear interpolation)
    np.testing.assert_allclose(out[5], [2.0, 1.0])  # median
    np.testing.assert_allclose(out[7], [2.0, 1.5])  # mean |delta|: (2, 2) and (0, 3)
    np.testing.assert_allclose(out[8], [0.0, 1.5])  # std of delta
    assert out.dtype == np.float32
    np.testing.assert_array_equal(functionals(frames[:1]).reshape(9, 2)[7:], 0.0)  # one frame: no movement
    rows = np.random.default_rng(0).standard_normal((301, 7))
    expected = np.percentile(rows, [10, 50, 90], axis=0)
    np.testing.assert_allclose(functionals(rows).reshape(9, 7)[4:7], expected, rtol=1e-5, atol=1e-6)


def test_functionals_frontend_summarizes_mfcc_and_logmel_frames():
    spec = dict(n_mels=26, n_mfcc=13, window="hamming")
    fe = FrontEnd("functionals", **spec)
    x = voiced(1.3)
    out = fe(x)
    assert out.shape == (1, 9 * (13 + 26)) == (fe.num_frames(len(x)), fe.n_features)
    frames = np.concatenate([FrontEnd("mfcc", **spec)(x), FrontEnd("logmel", **spec)(x)], axis=1)
    np.testing.assert_allclose(out[0], functionals(frames), rtol=1e-5, atol=1e-5)
    assert FrontEnd.from_dict(fe.to_dict()) == fe
    assert fe(x[: fe.frame_length]).shape == (1, fe.n_features)  # one analysis frame is enough
    with pytest.raises(ContractError, match="n_mfcc"):
        FrontEnd("functionals", n_mels=13, n_mfcc=20)
