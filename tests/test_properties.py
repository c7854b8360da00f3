"""Property tests (hypothesis): any sample array, any damaged audio file and any contract either works or
raises an EdgeSERError with a one-line message. Bounded: a fixed number of examples each, derandomized, so
the suite's time and outcome do not vary. tests/fuzz/fuzz.py runs the same idea for 100,000s of cases."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import soundfile as sf
from conftest import voiced
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tiny_models import make_contract

from edge_ser import Recognizer
from edge_ser.audio import MAX_AMPLITUDE, load_audio
from edge_ser.contract import ModelContract
from edge_ser.errors import AudioError, ContractError, EdgeSERError

PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def one_line(exc: BaseException) -> None:
    assert "\n" not in str(exc) and str(exc)


# -- arrays ---------------------------------------------------------------------------------------------------------
DTYPES = st.sampled_from([np.int16, np.int32, np.float32, np.float64, np.uint8, np.int64, np.float16])
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=1, max_dims=1, min_side=0, max_side=3000),
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=300),
    hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=4),
)
RATES = st.one_of(
    st.integers(-10, 200_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([16000, 8000, 44100, 96000, "16000", None, True]),
)


@st.composite
def arrays(draw):
    dtype = draw(DTYPES)
    elements = (
        st.floats(width=32 if dtype == np.float32 else 64, allow_nan=True, allow_infinity=True)
        if np.dtype(dtype).kind == "f" and dtype != np.float16
        else None
    )
    return draw(hnp.arrays(dtype, draw(SHAPES), elements=elements))


@PROPERTY
@given(samples=arrays(), rate=RATES)
def test_any_array_is_a_clean_signal_or_an_audio_error(samples, rate):
    try:
        signal, out_rate = load_audio(samples, sample_rate=rate, target_rate=16000)
    except AudioError as exc:
        one_line(exc)
        return
    assert signal.dtype == np.float32 and signal.ndim == 1 and len(signal) > 0 and out_rate == 16000
    assert np.isfinite(signal).all() and np.abs(signal).max() <= 2 * MAX_AMPLITUDE


@PROPERTY
@given(samples=arrays(), rate=st.sampled_from([16000, 8000, 48000]))
def test_any_array_predicts_or_raises_an_edge_ser_error(tiny_model, samples, rate):
    rec = _recognizer(tiny_model)
    try:
        p = rec.predict(samples, rate)
    except EdgeSERError as exc:
        one_line(exc)
        return
    assert math.isclose(sum(p.scores.values()), 1.0, abs_tol=1e-6)


_CACHE: dict[str, Recognizer] = {}


def _recognizer(path) -> Recognizer:
    if str(path) not in _CACHE:
        _CACHE[str(path)] = Recognizer(path)
    return _CACHE[str(path)]


# -- damaged files --------------------------------------------------------------------------------------------------
def _encoded(fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, voiced(0.5), 16000, format=fmt, subtype=subtype)
    return buffer.getvalue()


SEEDS = {
    kind: _encoded(*kind)
    for kind in [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")]
}


@st.composite
def damaged_files(draw):
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["set", "cut", "insert", "int"]))
        if op == "set":
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 2000))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[at : at + 4] = draw(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 65535])).to_bytes(4, "little")
        if not data:
            data = bytearray(b"\0")
    return bytes(data)


@PROPERTY
@given(data=damaged_files())
def test_any_damaged_file_decodes_or_raises_an_audio_error(tiny_model, data):
    try:
        signal, rate = load_audio(data)
    except AudioError as exc:
        one_line(exc)
        return
    assert signal.dtype == np.float32 and np.isfinite(signal).all() and 8000 <= rate <= 96000
    try:
        _recognizer(tiny_model).predict(data)
    except EdgeSERError as exc:  # e.g. too short for the model
        one_line(exc)


# -- contracts ------------------------------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            yield from _paths(v, (*prefix, i))


BASE = make_contract().to_dict()
PATHS = [p for p in _paths(BASE) if p]


@PROPERTY
@given(path=st.sampled_from(PATHS), value=JSON_VALUES, delete=st.booleans())
def test_any_changed_field_loads_or_raises_a_contract_error(path, value, delete):
    d = json.loads(json.dumps(BASE))
    parent = d
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    try:
        contract = ModelContract.from_json(json.dumps(d))
    except ContractError as exc:
        one_line(exc)
        return
    # whatever loads is bounded: windows overlap at most 50-fold and every hop advances
    rate = contract.sample_rate
    assert 1 <= round(contract.hop_seconds * rate) <= round(contract.window_seconds * rate)
    assert contract.window_seconds <= 50 * contract.hop_seconds
    assert ModelContract.from_json(contract.to_json()) == contract


@PROPERTY
@given(text=st.text(max_size=200))
def test_any_text_is_a_contract_or_a_contract_error(text):
    with pytest.raises(ContractError):
        ModelContract.from_json(text)
