"""Recognizer end to end on tiny models: results, windows, batching, silence, streaming, threads."""

import threading

import numpy as np
import pytest
import soundfile as sf
from conftest import voiced

from edge_ser import AudioError, Prediction, Recognizer
from edge_ser.model import softmax
from edge_ser.windows import plan


@pytest.fixture(scope="module")
def rec(tiny_model):
    return Recognizer(tiny_model)


def reference_probs(rec, signal):
    """What the model gives for one window, computed here without the Recognizer's plumbing."""
    feats = rec.contract.normalization(rec.contract.frontend(signal))[None].astype(np.float32)
    out = rec._model.session.run(None, {"input": feats})
    return softmax(out[0])[0], softmax(out[1])[0]


def test_predict_matches_direct_session_run(rec):
    x = voiced(0.8)
    p = rec.predict(x, sample_rate=16000)
    emo, gender = reference_probs(rec, x)
    assert isinstance(p, Prediction) and not p.silent
    np.testing.assert_allclose(list(p.scores.values()), emo, rtol=1e-5)
    assert p.label == rec.labels[int(emo.argmax())]
    assert abs(sum(p.scores.values()) - 1) < 1e-9
    assert set(p.heads) == {"gender"}
    np.testing.assert_allclose(list(p.heads["gender"].scores.values()), gender, rtol=1e-5)
    assert (p.start, p.end) == (0.0, 0.8)


def test_long_audio_is_windowed_and_averaged(rec):
    x = voiced(3.3)
    segments = rec.predict_segments(x, sample_rate=16000)
    bounds = plan(len(x), 16000, 8000)
    assert [(round(s.start * 16000), round(s.end * 16000)) for s in segments] == bounds
    for seg, (s, e) in zip(segments, bounds):
        np.testing.assert_allclose(list(seg.scores.values()), reference_probs(rec, x[s:e])[0], rtol=1e-5)
    whole = rec.predict(x, sample_rate=16000)
    mean = np.mean([list(s.scores.values()) for s in segments], axis=0)
    np.testing.assert_allclose(list(whole.scores.values()), mean, rtol=1e-9)


def test_window_plan():
    assert plan(100, 100, 50) == [(0, 100)]
    assert plan(60, 100, 50) == [(0, 60)]
    assert plan(200, 100, 50) == [(0, 100), (50, 150), (100, 200)]
    assert plan(230, 100, 50) == [(0, 100), (50, 150), (100, 200), (130, 230)]


def test_other_rates_and_channels_are_handled(rec):
    x16 = voiced(1.0)
    p16 = rec.predict(x16, sample_rate=16000)
    x48 = np.interp(np.arange(48000) / 3, np.arange(16000), x16).astype(np.float32)
    p48 = rec.predict(np.stack([x48, x48], axis=1), sample_rate=48000)
    assert p48.label == p16.label
    assert abs(p48.end - 1.0) < 1e-3


def test_files_and_arrays_agree(rec, tmp_path):
    x = voiced(1.2)
    sf.write(tmp_path / "x.wav", x, 16000, subtype="FLOAT")
    a = rec.predict(tmp_path / "x.wav")
    b = rec.predict(x, sample_rate=16000)
    assert a.scores == b.scores


def test_silence_is_a_defined_result(rec):
    p = rec.predict(np.zeros(16000, np.float32), sample_rate=16000)
    assert p.silent and p.label is None
    assert all(np.isfinite(v) for v in p.scores.values())
    assert abs(sum(p.scores.values()) - 1) < 1e-9
    x = voiced(2.0)
    x[:16000] = 0
    segments = rec.predict_segments(x, sample_rate=16000)
    assert segments[0].silent and not segments[-1].silent
    voiced_only = [s for s in segments if not s.silent]
    whole = rec.predict(x, sample_rate=16000)
    np.testing.assert_allclose(
        list(whole.scores.values()), np.mean([list(s.scores.values()) for s in voiced_only], axis=0), rtol=1e-9
    )
    x = voiced(1.5)
    x[:16000] = 0  # windows (0, 1 s) silent and (0.5, 1.5 s) voiced: the clip's scores are that one window's
    segments = rec.predict_segments(x, sample_rate=16000)
    assert [s.silent for s in segments] == [True, False]
    assert rec.predict(x, sample_rate=16000).scores == segments[1].scores


def test_too_short_audio(rec):
    with pytest.raises(AudioError, match="too short.*at least 0.1 s"):
        rec.predict(voiced(0.05), sample_rate=16000)
    assert rec.predict(voiced(0.1), sample_rate=16000).end == pytest.approx(0.1)


def test_batch_equals_single_and_reports_bad_items(rec):
    clips = [voiced(0.7, seed=1), voiced(2.2, seed=2), np.array([np.nan], np.float32), voiced(1.0, seed=3)]
    out = rec.predict_batch(clips, sample_rate=16000, on_error="return")
    assert isinstance(out[2], AudioError)
    for clip, result in zip([clips[0], clips[1], clips[3]], [out[0], out[1], out[3]]):
        np.testing.assert_allclose(
            list(result.scores.values()), list(rec.predict(clip, sample_rate=16000).scores.values()), rtol=1e-5
        )
    with pytest.raises(AudioError):
        rec.predict_batch(clips, sample_rate=16000)


def test_waveform_model(waveform_model):
    rec = Recognizer(waveform_model)
    p = rec.predict(voiced(1.5), sample_rate=16000)
    assert set(p.scores) == {"calm", "excited"} and p.heads == {}


def test_thread_safe_predict(rec):
    clips = [voiced(1.0 + 0.1 * i, seed=i) for i in range(8)]
    expected = [rec.predict(c, sample_rate=16000).scores for c in clips]
    results: dict[int, list] = {}

    def work(k):
        results[k] = [rec.predict(c, sample_rate=16000).scores for c in clips for _ in range(3)][::3]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        for got, want in zip(results[k], expected):
            np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-6)


def feed(stream, x, chunk):
    out = []
    for i in range(0, len(x), chunk):
        out += stream.accept(x[i : i + chunk])
    return out + stream.flush()


@pytest.mark.parametrize("seconds,chunk", [(0.7, 320), (1.0, 320), (3.3, 320), (5.0, 7), (2.6, 16000)])
def test_stream_equals_offline_segments(rec, seconds, chunk):
    x = voiced(seconds)
    offline = rec.predict_segments(x, sample_rate=16000)
    streamed = feed(rec.stream(), x, chunk)
    assert [(s.start, s.end) for s in streamed] == [(s.start, s.end) for s in offline]
    for a, b in zip(streamed, offline):
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), rtol=1e-5)
        assert a.heads["gender"].label == b.heads["gender"].label


def test_stream_at_another_rate_equals_offline(rec):
    x = voiced(2.7, rate=48000)
    offline = rec.predict_segments(x, sample_rate=48000)
    streamed = feed(rec.stream(sample_rate=48000), x, 960)
    assert [(s.start, s.end) for s in streamed] == [(s.start, s.end) for s in offline]
    for a, b in zip(streamed, offline):
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), rtol=1e-4)


def test_stream_memory_is_bounded(rec):
    stream = rec.stream()
    chunk = voiced(0.02)
    peak, results = 0, 0
    for _ in range(3000):  # one minute of 20 ms chunks
        results += len(stream.accept(chunk))
        peak = max(peak, stream.buffered_samples)
    assert results == (60 * 16000 - 16000) // 8000 + 1
    assert peak <= 16000 + 8000 + 320


def test_stream_reset_and_misuse(rec):
    stream = rec.stream()
    x = voiced(1.5)
    first = feed(stream, x, 400)
    with pytest.raises(AudioError, match="already flushed"):
        stream.accept(x)
    stream.reset()
    again = feed(stream, x, 400)
    assert [s.scores for s in first] == [s.scores for s in again]
    with pytest.raises(AudioError, match="NaN"):
        rec.stream().accept(np.array([np.nan], np.float32))
    with pytest.raises(AudioError, match="outside"):
        rec.stream(sample_rate=1000)
    assert rec.stream().accept(np.zeros(0, np.float32)) == []
    short = rec.stream()
    assert feed(short, voiced(0.05), 100) == []


@pytest.mark.parametrize(
    "frontend",
    [
        {"kind": "logmel", "n_mels": 40, "window": "hann"},
        {"kind": "mfcc", "n_mels": 26, "n_mfcc": 13},
        {"kind": "functionals", "n_mels": 20, "n_mfcc": 10, "preemph": 0.0},
    ],
)
def test_features_once_equal_window_by_window(frontend):
    """Frames shared by overlapping windows are computed once, whatever the blocks; the rows equal each
    window's own analysis (first frame's pre-emphasis and last frame's padding included)."""
    from edge_ser.frontend import FrontEnd
    from edge_ser.windows import Cutter

    fe = FrontEnd(**frontend)
    x = voiced(7.37, seed=3)
    sizes = np.random.default_rng(0).integers(1, 9000, 200)
    cutter, cut, i = Cutter(16000, 8000, 4000, fe), [], 0
    for n in sizes:
        cut += cutter.push(x[i : i + n])
        i += n
    cut += cutter.push(x[i:]) + cutter.finish()
    assert [(w.start, w.end) for w in cut] == plan(len(x), 16000, 8000)
    for w in cut:
        own = fe.frame_rows(x[w.start : w.end])
        assert w.rows.shape == own.shape
        np.testing.assert_allclose(w.rows, own, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fe.pool(w.rows), fe(x[w.start : w.end]), rtol=1e-4, atol=1e-4)
    assert cutter.buffered_samples <= 16000 + 8000 + 9000


def test_predict_batch_and_stream_are_exactly_predict(rec):
    """Results do not depend on batching or chunking: equal, not merely close."""
    clips = [voiced(s, seed=i) for i, s in enumerate((0.7, 2.35, 4.1))]
    singles = [rec.predict(c, sample_rate=16000) for c in clips]
    assert rec.predict_batch(clips, sample_rate=16000) == singles
    for c in clips:
        segments = rec.predict_segments(c, sample_rate=16000)
        assert feed(rec.stream(), c, 123) == segments == feed(rec.stream(), c, 16000)


def test_long_audio_in_blocks_equals_window_by_window(rec):
    """A signal longer than several read blocks, at another rate: resampled as a stream and analysed once,
    it gives what resampling it whole and scoring each window on its own gives."""
    from edge_ser import recognizer
    from edge_ser.resample import resample

    x = np.tile(voiced(3.0, rate=44100), 2 * recognizer.BLOCK // 44100 + 3)
    segments = rec.predict_segments(x, sample_rate=44100)
    y = resample(x, 44100, 16000)
    bounds = plan(len(y), rec.window_samples, rec.hop_samples)
    assert [(round(s.start * 16000), round(s.end * 16000)) for s in segments] == bounds
    for s, (a, b) in zip(segments, bounds):
        emo, _ = reference_probs(rec, y[a:b])
        np.testing.assert_allclose(list(s.scores.values()), emo, rtol=1e-4, atol=1e-5)
    assert (
        rec.predict(x.astype(np.float64)[:, None].repeat(2, axis=1), sample_rate=44100).label
        == rec.predict(x, sample_rate=44100).label
    )


def test_long_file_is_read_in_blocks(rec, tmp_path):
    """A 5-minute 44.1 kHz file: predict holds a few blocks, never the decoded signal (53 MB as float32), and
    gives what the same samples as an array give."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = (np.tile(voiced(3.0, rate=44100), 100) * 32767).astype(np.int16) + rng.integers(-3, 4, 300 * 44100, np.int16)
    path = tmp_path / "long.wav"
    sf.write(path, x, 44100, subtype="PCM_16")
    rec.predict(voiced(1.0), sample_rate=16000)  # per-thread buffers in place
    tracemalloc.start()
    from_file = rec.predict(str(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20
    assert from_file == rec.predict(x, sample_rate=44100)
