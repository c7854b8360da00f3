"""The polyphase resampler keeps frequencies, rejects aliases, and streams exactly."""

import numpy as np
import pytest

from edge_ser.resample import _GRID, StreamResampler, output_length, resample


def tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def spectrum_peak(y: np.ndarray, rate: int) -> tuple[float, float]:
    """(frequency of the peak, its level in dB re a full-scale sine), edges trimmed."""
    y = y[len(y) // 8 : -len(y) // 8]
    w = np.hanning(len(y))
    mag = np.abs(np.fft.rfft(y * w)) / (w.sum() / 2)
    k = int(mag.argmax())
    return k * rate / len(y), 20 * np.log10(mag[k] + 1e-20)


@pytest.mark.parametrize(
    "rate_in,rate_out,freq",
    [
        (48000, 16000, 1000),
        (44100, 16000, 3000),
        (8000, 16000, 440),
        (22050, 16000, 5000),
        (96000, 16000, 6000),
        (16000, 8000, 2500),
    ],
)
def test_sine_keeps_its_frequency_and_level(rate_in, rate_out, freq):
    y = resample(tone(freq, rate_in), rate_in, rate_out)
    assert len(y) == rate_out
    f, level = spectrum_peak(y, rate_out)
    assert abs(f - freq) <= 2.0
    assert level > -1.0


@pytest.mark.parametrize(
    "rate_in,rate_out,freq",
    [
        (48000, 16000, 8800),
        (48000, 16000, 12000),
        (44100, 16000, 9000),
        (16000, 8000, 4400),
        (96000, 8000, 20000),
        (32000, 16000, 15000),
    ],
)
def test_content_above_new_nyquist_is_attenuated_40db(rate_in, rate_out, freq):
    y = resample(tone(freq, rate_in), rate_in, rate_out)
    _, level = spectrum_peak(y, rate_out)
    assert level < -40.0


def test_identity_and_lengths():
    x = tone(300, 16000, 0.3)
    np.testing.assert_allclose(resample(x, 16000, 16000), x.astype(np.float32))
    assert output_length(44100, 44100, 16000) == 16000
    assert len(resample(np.ones(7), 48000, 16000)) == 3


@pytest.mark.parametrize("rate_in,rate_out", [(44100, 16000), (8000, 16000), (48000, 16000), (16001, 16000)])
def test_stream_resampler_equals_offline(rate_in, rate_out):
    x = np.random.default_rng(0).standard_normal(12345)
    rs = StreamResampler(rate_in, rate_out)
    rng = np.random.default_rng(1)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        parts.append(rs.process(x[i : i + n]))
        i += n
        assert len(rs._history) < 700 + 4 * rs._half + _GRID * rs.down // rs.up + 1  # bounded history
    parts.append(rs.flush())
    np.testing.assert_allclose(np.concatenate(parts), resample(x, rate_in, rate_out), atol=1e-6)
    whole = StreamResampler(rate_in, rate_out)
    np.testing.assert_array_equal(np.concatenate([whole.process(x), whole.flush()]), np.concatenate(parts))


@pytest.mark.parametrize("rate_in", [48000, 44100, 24000, 8000])
def test_each_output_is_the_kernel_dot_its_window(rate_in):
    """Written out sample by sample: output ``n`` is its phase's kernel times the input around ``n * down / up``,
    whether the phase's windows overlap (48, 24, 8 kHz: einsum) or not (44.1 kHz: BLAS)."""
    from edge_ser.resample import _half_width, _ratio, _table

    x = np.random.default_rng(rate_in).standard_normal(rate_in // 10)
    up, down = _ratio(rate_in, 16000)
    half, table = _half_width(up, down), _table(up, down)
    padded = np.concatenate([np.zeros(2 * half), x, np.zeros(2 * half)])
    y = resample(x, rate_in, 16000)
    for n in range(0, len(y), 37):
        start = n * down // up - half + 1 + 2 * half
        expected = float(padded[start : start + 2 * half] @ table[(n * down) % up])
        assert abs(y[n] - expected) <= 1e-6 * (1 + abs(expected))
