"""Audio input: every accepted form decodes the same; every bad input gets an AudioError."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import voiced

from edge_ser.audio import load_audio
from edge_ser.errors import AudioError, EdgeSERError


@pytest.fixture
def wav(tmp_path):
    x = voiced(1.0)
    path = tmp_path / "a.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    return path, sf.read(path, dtype="float32")[0]


@pytest.mark.parametrize(
    "fmt,subtype",
    [
        ("WAV", "PCM_16"),
        ("WAV", "FLOAT"),
        ("FLAC", "PCM_24"),
        ("OGG", "VORBIS"),
        ("OGG", "OPUS"),
        ("MP3", "MPEG_LAYER_III"),
    ],
)
def test_formats_paths_files_and_bytes_agree(tmp_path, fmt, subtype):
    x = voiced(1.0)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    if subtype in ("OPUS", "MPEG_LAYER_III"):  # lossy with a delay: decoded, same in every form, right rate
        a, rate = load_audio(path)
        assert rate == 16000 and abs(len(a) - len(x)) < 0.1 * len(x)
        np.testing.assert_array_equal(load_audio(path.read_bytes())[0], a)
        return
    a, ra = load_audio(path)
    b, rb = load_audio(str(path))
    with open(path, "rb") as f:
        c, rc = load_audio(f)
    d, rd = load_audio(path.read_bytes())
    assert ra == rb == rc == rd == 16000
    for y in (b, c, d):
        np.testing.assert_array_equal(a, y)
    tol = 0.05 if fmt == "OGG" else 1e-3
    assert a.dtype == np.float32 and np.abs(a - x).max() < tol


def test_numpy_dtypes_scale_to_the_same_signal():
    x = voiced(0.5)
    i16 = np.round(x * 32767).astype(np.int16)
    i32 = i16.astype(np.int32) << 16
    ref = i16.astype(np.float32) / 32768
    for arr in (i16, i32, ref.astype(np.float64), ref):
        y, rate = load_audio(arr, sample_rate=16000)
        np.testing.assert_allclose(y, ref, atol=1e-7)
        assert rate == 16000 and y.dtype == np.float32


def test_multichannel_is_downmixed_either_layout():
    left, right = voiced(0.5, seed=1), voiced(0.5, seed=2)
    frames_first = np.stack([left, right], axis=1)
    expected = (left + right) / 2
    np.testing.assert_allclose(load_audio(frames_first, sample_rate=16000)[0], expected, atol=1e-7)
    np.testing.assert_allclose(load_audio(frames_first.T, sample_rate=16000)[0], expected, atol=1e-7)


def test_stereo_file_is_downmixed(tmp_path):
    stereo = np.stack([voiced(0.5, seed=1), np.zeros(8000, np.float32)], axis=1)
    sf.write(tmp_path / "s.flac", stereo, 16000)
    y, _ = load_audio(tmp_path / "s.flac")
    np.testing.assert_allclose(y, stereo.mean(axis=1), atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000])
def test_any_rate_is_resampled_to_target(rate):
    y, r = load_audio(voiced(1.0, rate=rate), sample_rate=rate, target_rate=16000)
    assert r == 16000 and abs(len(y) - 16000) <= 1


def write_truncated(path):
    sf.write(path, voiced(1.0), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_garbage(path):
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)


BAD_FILES = {
    "missing": (lambda p: None, "not found"),
    "directory": (lambda p: p.mkdir(), "directory"),
    "not audio": (lambda p: p.write_text("hello, I am text\n" * 50), "not a readable audio file"),
    "corrupt": (write_garbage, "not a readable audio file"),
    "truncated": (write_truncated, "truncated"),
    "empty file": (lambda p: p.write_bytes(b""), "not a readable audio file"),
    "zero samples": (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_audio_error(tmp_path, case):
    make, message = BAD_FILES[case]
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, EdgeSERError)


@pytest.mark.parametrize(
    "array,rate,message",
    [
        (np.zeros(0, np.float32), 16000, "empty"),
        (np.array([0.1, np.nan, 0.2], np.float32), 16000, "NaN"),
        (np.array([0.1, np.inf], np.float64), 16000, "NaN or infinite"),
        (np.zeros(100, np.uint8), 16000, "unsupported sample dtype"),
        (np.zeros(100, np.complex64), 16000, "unsupported sample dtype"),
        (np.zeros(100, np.float32), 4000, "outside the supported"),
        (np.zeros(100, np.float32), 192000, "outside the supported"),
        (np.zeros(100, np.float32), None, "needs sample_rate"),
        (np.zeros((2, 3, 100), np.float32), 16000, "1-D"),
        (np.zeros((100, 100), np.float32), 16000, "channels"),
    ],
)
def test_bad_arrays_raise_audio_error(array, rate, message):
    with pytest.raises(AudioError, match=message):
        load_audio(array, sample_rate=rate)


def test_bad_rate_in_file_header(tmp_path):
    sf.write(tmp_path / "low.wav", voiced(0.5, rate=4000), 4000)
    with pytest.raises(AudioError, match="outside"):
        load_audio(tmp_path / "low.wav")


def test_other_input_types_are_rejected():
    with pytest.raises(AudioError, match="cannot read audio"):
        load_audio([0.1, 0.2])
    with pytest.raises(AudioError, match="encoded audio carries its rate"):
        load_audio(io.BytesIO(b"x"), sample_rate=16000)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG"])
def test_truncated_compressed_files(tmp_path, fmt):
    path = tmp_path / f"t.{fmt.lower()}"
    sf.write(path, voiced(1.0), 16000, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated|not a readable|empty"):
        load_audio(path)


# -- issue 21: inputs that escaped the error hierarchy or lied ---------------------------------------


def encoded(fmt: str, subtype: str, seconds: float = 4.4, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, voiced(seconds, rate=rate), rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("subtype,rate", [("VORBIS", 16000), ("OPUS", 48000)])
@pytest.mark.parametrize("keep", [0.25, 0.5, 0.75, 0.9, 0.99, 0.995])
def test_truncated_ogg_is_an_error_not_a_shorter_signal(tmp_path, subtype, rate, keep):
    data = encoded("OGG", subtype, rate=rate)
    load_audio(data)  # the whole file reads
    path = tmp_path / "cut.ogg"
    path.write_bytes(data[: int(len(data) * keep)])
    for source in (path, path.read_bytes(), io.BytesIO(path.read_bytes())):
        with pytest.raises(AudioError, match="truncated|not a readable"):
            load_audio(source)


def flac_declaring(frames: int) -> bytes:
    """A valid FLAC whose STREAMINFO claims ``frames`` samples (36-bit field at byte 18)."""
    data = bytearray(encoded("FLAC", "PCM_16", seconds=0.5))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    field = int.from_bytes(data[18:26], "big")
    field = (field & ~(2**36 - 1)) | frames
    data[18:26] = field.to_bytes(8, "big")
    return bytes(data)


@pytest.mark.parametrize("frames", [2**34, 2**31, 2**29 + 1])
def test_a_header_declaring_huge_audio_is_refused_before_reading(frames):
    from edge_ser.audio import AudioFile

    with pytest.raises(AudioError, match="declares"):
        load_audio(flac_declaring(frames))
    with pytest.raises(AudioError, match="declares"):  # the block reader too: no hours of decoding
        AudioFile(flac_declaring(frames))


def test_a_header_declaring_more_than_the_file_holds_is_truncated():
    with pytest.raises(AudioError, match="truncated|not a readable"):
        load_audio(flac_declaring(16000 * 60))


@pytest.mark.parametrize(
    "scale,dtype", [(1e300, np.float64), (1e30, np.float64), (1e30, np.float32), (1e7, np.float32)]
)
def test_float_audio_beyond_any_full_scale_is_bad_audio(tmp_path, scale, dtype):
    x = (voiced(0.5).astype(np.float64) * scale).astype(dtype)
    with pytest.raises(AudioError, match="float audio must be near"):
        load_audio(x, sample_rate=16000)
    with pytest.raises(AudioError, match="float audio must be near"):
        load_audio(np.stack([x, x], axis=1), sample_rate=16000)
    if dtype == np.float32:
        sf.write(tmp_path / "loud.wav", x, 16000, subtype="FLOAT")
        with pytest.raises(AudioError, match="float audio must be near"):
            load_audio(tmp_path / "loud.wav")
    load_audio(voiced(0.5) * 32768, sample_rate=16000)  # int16-scaled floats are still audio


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -float("inf"), 16000.5, np.float32("nan"), "16000"])
def test_non_finite_or_non_integral_rates_are_audio_errors(rate):
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(voiced(0.5), sample_rate=rate)


def test_float_rates_that_are_whole_numbers_are_accepted():
    assert load_audio(voiced(0.5), sample_rate=16000.0)[1] == 16000
    assert load_audio(voiced(0.5), sample_rate=np.float64(16000))[1] == 16000


def test_file_names_that_are_not_utf8(tmp_path):
    name = os.fsencode(tmp_path) + b"/\xff\xfe voice.wav"
    x = voiced(0.5)
    with open(name, "wb") as f:
        sf.write(f, x, 16000, format="WAV", subtype="FLOAT")
    expected, _ = load_audio(x, sample_rate=16000)
    for source in (name, os.fsdecode(name), Path(os.fsdecode(name))):
        signal, rate = load_audio(source)
        np.testing.assert_array_equal(signal, expected)
    with pytest.raises(AudioError, match="not found") as info:
        load_audio(os.fsencode(tmp_path) + b"/\xff missing.wav")
    str(info.value).encode("utf-8")  # the message is printable


@pytest.mark.parametrize("shape", [(2, 40), (40, 2), (1, 64), (64, 1), (3, 1000), (1000, 3), (5, 5)])
def test_the_shorter_axis_holds_the_channels(shape):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    channels_last = x.T if shape[0] < shape[1] else x
    signal, _ = load_audio(x, sample_rate=16000)
    np.testing.assert_allclose(signal, channels_last.mean(axis=1), rtol=1e-6)


def test_audio_file_reads_blocks_of_mono(tmp_path):
    from edge_ser.audio import AudioFile

    x = np.stack([voiced(3.0), voiced(3.0, seed=1)], axis=1)
    sf.write(tmp_path / "s.flac", x, 16000)
    with AudioFile(tmp_path / "s.flac") as f:
        assert (f.rate, f.frames, f.channels) == (16000, 48000, 2)
        blocks = list(f.blocks(5000))
    assert [len(b) for b in blocks] == [5000] * 9 + [3000]
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(tmp_path / "s.flac")[0])
