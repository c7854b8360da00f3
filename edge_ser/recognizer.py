"""The Recognizer: audio -> front-end -> ONNX model -> Prediction, offline or streaming."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from . import windows
from .audio import AudioInput, check_rate, load_audio, to_mono_float
from .contract import ModelContract
from .ctc import greedy_decode
from .errors import AudioError, EdgeSERError, ModelError
from .frontend import Normalization
from .model import OnnxModel
from .profile import Moments, SpeakerProfile
from .resample import StreamResampler
from .result import HeadResult, Prediction

SILENCE_PEAK = 1e-4  # -80 dBFS: below one 16-bit LSB of dither, i.e. digital silence
MAX_BATCH = 32  # windows per ONNX Runtime call

Probs = dict[str, np.ndarray]


class Recognizer:
    """Speech emotion recognition with one self-describing ONNX model.

    ``model`` is a path or the name of a shipped model. ``threads`` is ONNX Runtime's
    intra-op thread count (1 suits a small device; 0 lets it choose); ``providers`` is
    passed to ONNX Runtime unchanged. ``predict`` may be called from several threads at once.

    ``profile`` (a :class:`~edge_ser.profile.SpeakerProfile`, for models trained with speaker
    adaptation) makes the recognizer adapt to its user: every utterance is normalized with the
    profile's statistics as they stood before it, then added to the profile. Calls are then
    serialized, so that each utterance sees exactly the ones before it.
    """

    def __init__(
        self,
        model: str | os.PathLike = "default",
        *,
        threads: int = 1,
        providers: Sequence[Any] | None = None,
        profile: SpeakerProfile | None = None,
    ) -> None:
        self._model = OnnxModel(model, threads=threads, providers=providers)
        c = self._model.contract
        if profile is not None:
            if c.adaptation != "speaker":
                raise ModelError(
                    f"model {c.name!r} was not trained for speaker adaptation; a profile needs a model trained "
                    "with --normalization speaker"
                )
            profile.bind(c.frontend)
        self.profile = profile
        self._lock = threading.Lock()
        self.sample_rate = c.sample_rate
        self._window = int(round(c.window_seconds * c.sample_rate))
        self._hop = int(round(c.hop_seconds * c.sample_rate))
        self._min = int(round(c.min_seconds * c.sample_rate))
        self._ctc = [h for h in c.heads if h.kind == "ctc"]

    @property
    def contract(self) -> ModelContract:
        return self._model.contract

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels of the emotion (primary) head."""
        return self._model.contract.labels

    @property
    def path(self) -> str:
        return str(self._model.path)

    def __repr__(self) -> str:
        return f"Recognizer({self.contract.name!r}, labels={list(self.labels)})"

    # -- offline -------------------------------------------------------------------------
    def predict(self, audio: AudioInput, sample_rate: int | None = None) -> Prediction:
        """The emotion of a whole clip: window scores averaged over its non-silent windows."""
        signal = self._load(audio, sample_rate)
        bounds = windows.plan(len(signal), self._window, self._hop)
        with self._adapting() as (norm, heard):
            probs = self._infer([signal[s:e] for s, e in bounds], norm, heard)
            return self._with_transcripts(self._aggregate(probs, len(signal)), signal, norm)

    def predict_segments(self, audio: AudioInput, sample_rate: int | None = None) -> list[Prediction]:
        """A timeline: one prediction per analysis window (see :mod:`edge_ser.windows`)."""
        signal = self._load(audio, sample_rate)
        bounds = windows.plan(len(signal), self._window, self._hop)
        with self._adapting() as (norm, heard):
            probs = self._infer([signal[s:e] for s, e in bounds], norm, heard)
        return [self._result(p, s, e) for p, (s, e) in zip(probs, bounds)]

    def predict_batch(
        self, audios: Iterable[AudioInput], sample_rate: int | None = None, *, on_error: str = "raise"
    ) -> list[Prediction | EdgeSERError]:
        """``predict`` for many clips, their windows batched together through the model.

        With ``on_error="return"`` a bad clip yields its exception in its place and the rest
        still run; with ``"raise"`` the first bad clip raises.
        """
        if on_error not in ("raise", "return"):
            raise ValueError("on_error must be 'raise' or 'return'")
        if self.profile is not None:  # each clip adapts to the ones before it: one at a time
            return [self._predict_or_error(audio, sample_rate, on_error) for audio in audios]
        items: list[tuple[int, int, int] | EdgeSERError] = []  # (first window, n windows, n samples)
        signals: list[np.ndarray | None] = []
        chunks: list[np.ndarray] = []
        for audio in audios:
            try:
                signal = self._load(audio, sample_rate)
            except EdgeSERError as exc:
                if on_error == "raise":
                    raise
                items.append(exc)
                signals.append(None)
                continue
            bounds = windows.plan(len(signal), self._window, self._hop)
            items.append((len(chunks), len(bounds), len(signal)))
            signals.append(signal if self._ctc else None)
            chunks.extend(signal[s:e] for s, e in bounds)
        probs = self._infer(chunks)
        out: list[Prediction | EdgeSERError] = []
        for item, signal in zip(items, signals):
            if isinstance(item, EdgeSERError):
                out.append(item)
            else:
                out.append(self._with_transcripts(self._aggregate(probs[item[0] : item[0] + item[1]], item[2]), signal))
        return out

    def stream(self, sample_rate: int | None = None) -> Stream:
        """A streaming session fed with chunks at ``sample_rate`` (default: the model's rate)."""
        return Stream(self, sample_rate)

    # -- internals -----------------------------------------------------------------------
    def _predict_or_error(self, audio: AudioInput, sample_rate: int | None, on_error: str) -> Prediction | EdgeSERError:
        try:
            return self.predict(audio, sample_rate)
        except EdgeSERError as exc:
            if on_error == "raise":
                raise
            return exc

    @contextlib.contextmanager
    def _adapting(self) -> Iterator[tuple[Normalization | None, Moments | None]]:
        """``(normalization, heard)`` for the next utterance: without a profile ``(None, None)`` (the
        contract's statistics); with one, the profile's statistics as they stand now and an empty
        :class:`Moments` that ``_infer`` fills with the utterance's voiced features, added to the
        profile when the block ends."""
        if self.profile is None:
            yield None, None
            return
        with self._lock:
            heard = Moments()
            yield self.profile.normalization(self._model.contract.normalization), heard
            self.profile.add_moments(heard)

    def _load(self, audio: AudioInput, sample_rate: int | None) -> np.ndarray:
        signal, _ = load_audio(audio, sample_rate, target_rate=self.sample_rate)
        if len(signal) < self._min:
            raise AudioError(
                f"audio is too short: {len(signal) / self.sample_rate:.3f} s, "
                f"this model needs at least {self.contract.min_seconds:g} s"
            )
        return signal

    def _infer(
        self, chunks: list[np.ndarray], norm: Normalization | None = None, heard: Moments | None = None
    ) -> list[Probs | None]:
        """Per-head probabilities for each chunk (``None`` for a silent one), equal-shaped chunks batched.

        ``norm`` overrides the contract's normalization; the voiced chunks' raw features are added to
        ``heard`` when given (speaker adaptation)."""
        c = self._model.contract
        results: list[Probs | None] = [None] * len(chunks)
        groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
        for i, chunk in enumerate(chunks):
            if np.abs(chunk).max() >= SILENCE_PEAK:
                if heard is None:
                    x = c.model_input(chunk, norm)
                else:
                    features = c.frontend(chunk)
                    heard.add(features)
                    x = c.normalize(features, norm)
                groups.setdefault(x.shape, []).append((i, x))
        for group in groups.values():
            for b in range(0, len(group), MAX_BATCH):
                part = group[b : b + MAX_BATCH]
                out = self._model.run(np.stack([x for _, x in part]))
                for row, (i, _) in enumerate(part):
                    results[i] = {head: p[row] for head, p in out.items()}
        return results

    def _result(self, probs: Probs | None, start: int, end: int) -> Prediction:
        heads = self._model.contract.heads
        t0, t1 = start / self.sample_rate, end / self.sample_rate
        if probs is None:
            uniform = {label: 1.0 / len(heads[0].labels) for label in heads[0].labels}
            return Prediction(label=None, scores=uniform, start=t0, end=t1, silent=True)
        results, transcripts = {}, {}
        for head in heads:
            p = probs.get(head.name)
            if head.kind == "ctc":
                if p is not None:
                    transcripts[head.name] = greedy_decode(p, head.labels, head.separator)
                continue
            results[head.name] = HeadResult(head.labels[int(p.argmax())], dict(zip(head.labels, map(float, p))))
        primary = results.pop(heads[0].name)
        return Prediction(primary.label, primary.scores, t0, t1, heads=results, transcripts=transcripts)

    def _aggregate(self, probs: list[Probs | None], n_samples: int) -> Prediction:
        voiced = [p for p in probs if p is not None]
        if not voiced:
            return self._result(None, 0, n_samples)
        ctc = {h.name for h in self._ctc}
        mean = {head: np.mean([p[head] for p in voiced], axis=0) for head in voiced[0] if head not in ctc}
        return self._result(mean, 0, n_samples)

    def _with_transcripts(
        self, prediction: Prediction, signal: np.ndarray | None, norm: Normalization | None = None
    ) -> Prediction:
        """A whole-clip prediction with each CTC head decoded over the whole clip in one pass
        (windows overlap, so their transcripts cannot simply be joined)."""
        if not self._ctc or signal is None or prediction.silent:
            return prediction
        out = self._model.run(self._model.contract.model_input(signal, norm)[None])
        text = {h.name: greedy_decode(out[h.name][0], h.labels, h.separator) for h in self._ctc}
        return dataclasses.replace(prediction, transcripts=text)


class Stream:
    """Chunks in (any size, e.g. 20 ms from a microphone), one prediction per window out.

    The windows, and so the predictions, are exactly those of ``predict_segments`` on the
    concatenated audio; memory stays bounded by about one window plus one hop plus one
    chunk, however long the stream. Call :meth:`flush` at the end of the audio.
    """

    def __init__(self, recognizer: Recognizer, sample_rate: int | None = None) -> None:
        self._rec = recognizer
        self._rate = recognizer.sample_rate if sample_rate is None else check_rate(sample_rate)
        self.reset()

    def reset(self) -> None:
        """Forget all audio heard so far and start a new stream (one utterance for a speaker profile:
        normalized with the profile as it stands now, added to it at :meth:`flush`)."""
        profile = self._rec.profile
        self._norm = profile.normalization(self._rec.contract.normalization) if profile is not None else None
        self._heard = Moments() if profile is not None else None
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # stream sample index of _buffer[0]
        self._received = 0
        self._next_start = 0
        self._last_end = 0
        self._finished = False
        model_rate = self._rec.sample_rate
        self._resampler = StreamResampler(self._rate, model_rate) if self._rate != model_rate else None

    @property
    def buffered_samples(self) -> int:
        """Samples held in memory now (bounded whatever the stream's length)."""
        return len(self._buffer)

    def accept(self, chunk: np.ndarray) -> list[Prediction]:
        """Add samples (any dtype ``load_audio`` takes, mono or multi-channel); returns finished windows."""
        if self._finished:
            raise AudioError("stream already flushed; call reset() to start a new one")
        if isinstance(chunk, np.ndarray) and chunk.size == 0:
            return []
        samples = to_mono_float(chunk)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        self._append(samples)
        bounds = self._full_windows()
        out = self._emit(bounds)
        keep_from = max(min(self._next_start, self._received - self._rec._window), 0)
        if keep_from > self._buffer_start:
            self._buffer = self._buffer[keep_from - self._buffer_start :]
            self._buffer_start = keep_from
        return out

    def flush(self) -> list[Prediction]:
        """End of audio: the remaining windows, the last aligned to the end, as ``predict_segments`` has them."""
        if self._finished:
            return []
        self._finished = True
        if self._resampler is not None:
            self._append(self._resampler.flush())
        w, n = self._rec._window, self._received
        bounds = self._full_windows()
        if n < w:
            bounds = [(0, n)] if n >= self._rec._min else []
        elif (bounds[-1][1] if bounds else self._last_end) < n:
            bounds.append((n - w, n))
        out = self._emit(bounds)
        if self._heard is not None:
            with self._rec._lock:
                self._rec.profile.add_moments(self._heard)
        return out

    def _append(self, samples: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, samples])
        self._received += len(samples)

    def _full_windows(self) -> list[tuple[int, int]]:
        """Windows that the samples received so far complete, in order."""
        bounds = []
        while self._next_start + self._rec._window <= self._received:
            bounds.append((self._next_start, self._next_start + self._rec._window))
            self._next_start += self._rec._hop
        return bounds

    def _emit(self, bounds: list[tuple[int, int]]) -> list[Prediction]:
        if not bounds:
            return []
        chunks = [self._buffer[s - self._buffer_start : e - self._buffer_start] for s, e in bounds]
        self._last_end = bounds[-1][1]
        probs = self._rec._infer(chunks, self._norm, self._heard)
        return [self._rec._result(p, s, e) for p, (s, e) in zip(probs, bounds)]
