"""The front-end's blocked FFT path: equal to one plain float64 transform of all frames, whatever the block
size, and no per-call scratch allocation (runtime only: no python_speech_features needed)."""

import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import voiced

from edge_ser import frontend
from edge_ser.frontend import FrontEnd, dct_matrix, mel_filterbank


def reference(fe: FrontEnd, x: np.ndarray, float32_frames: bool = True) -> np.ndarray:
    """The front-end written plainly: pre-emphasis, zero-padded frames, window, one float64 rfft of all frames,
    power, dense filterbank, log (and DCT, lifter, energy for MFCC). The frames are pre-emphasized and windowed
    in float32, each product rounded, as the front-end documents (``float32_frames=False``: float64 throughout)."""
    dtype = np.float32 if float32_frames else np.float64
    x = x.astype(dtype)
    y = np.concatenate([x[:1], x[1:] - x[:-1] * dtype(fe.preemph)]) if fe.preemph else x
    n = fe.analysis_frames(len(y))
    padded = np.zeros((n - 1) * fe.frame_step + fe.frame_length, dtype)
    padded[: len(y)] = y
    frames = np.lib.stride_tricks.sliding_window_view(padded, fe.frame_length)[:: fe.frame_step]
    window = {"rect": np.ones, "hamming": np.hamming, "hann": np.hanning}[fe.window](fe.frame_length).astype(dtype)
    frames = (frames * window).astype(np.float64)
    power = np.abs(np.fft.rfft(frames, n=fe.n_fft)) ** 2 / fe.n_fft
    eps = np.finfo(float).eps
    if fe.kind == "logspec":
        return np.log(np.where(power == 0, eps, power))
    bands = power @ mel_filterbank(fe.n_mels, fe.n_fft, fe.sample_rate, fe.low_freq, fe.high_freq).T
    logbands = np.log(np.where(bands == 0, eps, bands))
    if fe.kind == "logmel":
        return logbands
    cep = logbands @ dct_matrix(fe.n_mels, fe.n_mfcc)
    cep *= 1 + (fe.lifter / 2) * np.sin(np.pi * np.arange(fe.n_mfcc) / fe.lifter)
    energy = power.sum(axis=1)
    cep[:, 0] = np.log(np.where(energy == 0, eps, energy))
    return cep


SPECS = [
    {"kind": "logmel", "n_mels": 64, "window": "hann"},  # the shipped english front-end
    {"kind": "logspec", "window": "hamming"},
    {"kind": "mfcc", "n_mels": 40, "n_mfcc": 40},  # the shipped chinese front-end
    {"kind": "logmel", "n_mels": 40, "n_fft": 1024, "win_length": 0.05, "hop_length": 0.02, "preemph": 0.0},
]


def lengths(fe: FrontEnd) -> list[int]:
    """Signal lengths whose frame counts sit on and around the FFT block boundaries."""
    frames = [1, 2, frontend.FFT_BLOCK - 1, frontend.FFT_BLOCK, frontend.FFT_BLOCK + 1, 3 * frontend.FFT_BLOCK + 5]
    return [fe.frame_length + (f - 1) * fe.frame_step for f in frames]


@pytest.mark.parametrize("spec", SPECS)
def test_blocked_path_equals_one_plain_transform(spec):
    fe = FrontEnd(**spec)
    for n in lengths(fe):
        x = voiced(n / 16000, seed=n)
        x[n // 3 : n // 3 + 800] = 0.0  # digital silence: empty bands are floored, not -inf
        ours, ref = fe(x), reference(fe, x)
        assert ours.dtype == np.float32 and ours.shape == ref.shape == (fe.analysis_frames(len(x)), fe.n_features)
        # float32 power and filterbank products against float64 after the frames: about 1e-6 relative
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", [s for s in SPECS if s["kind"] != "mfcc"])
def test_float32_frames_keep_the_band_energies_of_float64(spec):
    """Frames are pre-emphasized and windowed in float32 (half the bytes of float64 passes): every band's energy
    stays within 1e-4 of a float64 computation's, or within 1e-7 of its frame's loudest band. A band 70 dB or more
    under the loudest (the DC bin after pre-emphasis) is only as exact as the frame's float32 rounding lets it be."""
    fe = FrontEnd(**spec)
    for n in lengths(fe):
        x = voiced(n / 16000, seed=n)
        x[n // 3 : n // 3 + 800] = 0.0
        ours, ref = np.exp(fe(x).astype(np.float64)), np.exp(reference(fe, x, float32_frames=False))
        loudest = ref.max(axis=1, keepdims=True)
        assert np.all(np.abs(ours - ref) <= 1e-4 * ref + 1e-7 * loudest)


@pytest.mark.parametrize("spec", SPECS)
def test_block_size_does_not_change_features(spec, monkeypatch):
    fe = FrontEnd(**spec)
    x = voiced(2.3, seed=7)
    default = fe(x)
    for block in (1, 3, 1000):
        monkeypatch.setattr(frontend, "FFT_BLOCK", block)
        np.testing.assert_allclose(fe(x), default, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("spec", SPECS)
def test_repeated_calls_reuse_their_scratch(spec):
    """After the first call on a signal length, a call allocates its output and little else: far less than
    the FFT input and spectrum of all frames that a call allocating its scratch would need."""
    fe = FrontEnd(**spec)
    x = voiced(3.0, seed=1)
    out = fe(x)
    tracemalloc.start()
    try:
        fe(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    spectrum = len(out) * (fe.n_fft // 2 + 1) * 4  # one float32 power spectrum of all frames
    assert peak < out.nbytes + spectrum < len(out) * fe.n_fft * 8


def test_front_ends_taking_turns_keep_their_fft_padding_zero():
    """The FFT input's zero padding is written once per scratch buffer, not per call: front-ends with other frame
    lengths (some filling the whole ``n_fft``) taking turns in one thread each get the features they get alone."""
    ends = [FrontEnd(kind="logmel", n_mels=40, win_length=w) for w in (0.032, 0.025, 0.02, 0.025, 0.032)]
    x = voiced(1.7, seed=3)

    def alone(fe: FrontEnd) -> np.ndarray:
        with ThreadPoolExecutor(1) as pool:  # a new thread: new scratch, zeroed when made
            return pool.submit(fe, x).result()

    expected = [alone(fe) for fe in ends]
    for _ in range(2):
        for fe, want in zip(ends, expected):
            np.testing.assert_array_equal(fe(x), want)
            np.testing.assert_array_equal(fe(x[: len(x) // 3]), fe.pool(alone_rows(fe, x[: len(x) // 3])))


def alone_rows(fe: FrontEnd, x: np.ndarray) -> np.ndarray:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fe.frame_rows, x).result()


@pytest.mark.parametrize("spec", SPECS)
def test_no_matrix_product_is_big_enough_for_blas_threads(spec, monkeypatch):
    """A minute of audio: every BLAS product stays under SERIAL_MACS multiply-adds (OpenBLAS threads bigger
    ones, and its threads stall a busy device), and the chunked products give the one-product features."""
    fe = FrontEnd(**spec)
    x = voiced(60.0, seed=5)
    calls = []
    matmul = np.matmul

    def recording(a, b, *args, **kwargs):
        calls.append(a.shape[0] * a.shape[1] * b.shape[1])
        return matmul(a, b, *args, **kwargs)

    monkeypatch.setattr(np, "matmul", recording)
    chunked = fe(x)
    limit = frontend.SERIAL_MACS
    monkeypatch.setattr(frontend, "SERIAL_MACS", 1 << 62)
    calls_whole = len(calls)
    whole = fe(x)
    if fe.kind != "logspec":
        assert calls_whole > 0 and max(calls[:calls_whole]) <= limit
        assert max(calls[calls_whole:]) > limit  # the same minute in one product would be threaded
    # float32 band energies, summed in another order where BLAS splits one product over its threads: MFCC
    # (40 log bands through the DCT) move by up to ~1e-5
    np.testing.assert_allclose(chunked, whole, rtol=3e-5, atol=3e-5)


@pytest.mark.parametrize("spec", SPECS)
def test_samples_after_a_frame_do_not_reach_it(spec):
    """Frames are windowed over ``n_fft`` samples whose tail is zero: what follows a frame in the signal is
    multiplied away, exactly, so a frame's row is the same whatever comes after it."""
    fe = FrontEnd(**spec)
    x = voiced(0.5, seed=3)
    frame = x[: fe.frame_length]
    loud = np.concatenate([frame, np.full(2 * fe.n_fft, 0.9, np.float32)])
    # each pair computed alike (same batch size and positions: BLAS rounding can depend on the batch)
    np.testing.assert_array_equal(
        fe.frame_rows(x[:0], n_frames=0, pieces=[(frame, None), (frame, 0.25)]),
        fe.frame_rows(x[:0], n_frames=0, pieces=[(loud, None), (loud, 0.25)]),
    )
    np.testing.assert_array_equal(fe.frame_rows(frame, n_frames=1), fe.frame_rows(loud, n_frames=1))
    assert fe.frame_window.shape == (fe.frame_length,)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("n_frames", [20, frontend.FFT_BLOCK - 1, frontend.FFT_BLOCK])
def test_single_frames_after_the_frames_are_those_frames_analysed_alone(spec, n_frames):
    """``pieces`` add rows after a signal's frames: each the frame starting at its samples, zero beyond them,
    with its own pre-emphasis start; the signal's rows are the same as without them (to BLAS rounding). They
    share the FFT pass of the signal's last block, or start the next one (``n_frames`` at the block's end)."""
    fe = FrontEnd(**spec)
    x = voiced(2.0, seed=5)
    pieces = [(x[100:300], None), (x[5000:], float(x[4999])), (x[-50:], 0.5)]
    signal = x[: (n_frames - 1) * fe.frame_step + fe.frame_length]
    rows = fe.frame_rows(signal, 0.1, n_frames, pieces)
    assert rows.shape == (n_frames + 3, fe.frame_width)
    np.testing.assert_allclose(rows[:n_frames], fe.frame_rows(signal, 0.1, n_frames), rtol=1e-5, atol=1e-5)
    for row, (samples, previous) in zip(rows[n_frames:], pieces):
        alone = fe.frame_rows(samples[: fe.frame_length], previous, 1)[0]
        np.testing.assert_allclose(row, alone, rtol=1e-5, atol=1e-5)
