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
from .audio import AudioFile, AudioInput, check_rate, to_mono_float
from .contract import ModelContract
from .ctc import greedy_decode
from .errors import AudioError, EdgeSERError, ModelError
from .frontend import Normalization
from .model import OnnxModel
from .profile import Moments, SpeakerProfile
from .resample import StreamResampler
from .result import HeadResult, Prediction

SILENCE_PEAK = 1e-4  # -80 dBFS: below one 16-bit LSB of dither, i.e. digital silence
BLOCK = 2**16  # input samples read, resampled and cut into windows at a time: memory is bounded by it

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

    Every path -- ``predict``, ``predict_segments``, ``predict_batch`` and :class:`Stream` -- reads
    audio in blocks, resamples them as a stream, computes each frame's features once and scores one
    window per model call, so results do not depend on batching or chunking (they are equal, not
    close) and memory does not grow with the audio's length.
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
            if c.adaptation == "none":
                raise ModelError(
                    f"model {c.name!r} was not trained for speaker adaptation; a profile needs a model trained "
                    "with --normalization speaker (or a base-tier model with embedding adaptation)"
                )
            profile.bind(c.embedding.profile_spec() if c.embedding is not None else c.frontend)
        self.profile = profile
        self._lock = threading.Lock()
        self.sample_rate = c.sample_rate
        self.window_samples = int(round(c.window_seconds * c.sample_rate))
        self.hop_samples = int(round(c.hop_seconds * c.sample_rate))
        self.min_samples = int(round(c.min_seconds * c.sample_rate))
        self._features = c.input_kind != "waveform"  # the runtime computes the front-end
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
        with self._adapting() as (norm, heard):
            probs, _, n, signal = self._scan(audio, sample_rate, norm, heard)
            return self._with_transcripts(self._aggregate(probs, n), signal, norm)

    def predict_segments(self, audio: AudioInput, sample_rate: int | None = None) -> list[Prediction]:
        """A timeline: one prediction per analysis window (see :mod:`edge_ser.windows`)."""
        with self._adapting() as (norm, heard):
            probs, bounds, _, _ = self._scan(audio, sample_rate, norm, heard)
        return [self.window_prediction(p, s, e) for p, (s, e) in zip(probs, bounds)]

    def predict_batch(
        self, audios: Iterable[AudioInput], sample_rate: int | None = None, *, on_error: str = "raise"
    ) -> list[Prediction | EdgeSERError]:
        """``predict`` for many clips, in order.

        With ``on_error="return"`` a bad clip yields its exception in its place and the rest
        still run; with ``"raise"`` the first bad clip raises. Windows are not batched across clips, so
        each result equals ``predict``'s exactly: a batched ONNX Runtime call may round differently with
        the batch (the dynamic-INT8 model shipped before changed labels), and on the shipped models it
        saves little or costs more per window (benchmarks/results/runtime.md, batch-size table).
        """
        if on_error not in ("raise", "return"):
            raise ValueError("on_error must be 'raise' or 'return'")
        return [self._predict_or_error(audio, sample_rate, on_error) for audio in audios]

    def stream(self, sample_rate: int | None = None) -> Stream:
        """A streaming session fed with chunks at ``sample_rate`` (default: the model's rate)."""
        return Stream(self, sample_rate)

    # -- the seam Stream uses --------------------------------------------------------------
    def cutter(self) -> windows.Cutter:
        """A fresh :class:`~edge_ser.windows.Cutter` for this model's windows and front-end."""
        frontend = self.contract.frontend if self._features else None
        return windows.Cutter(self.window_samples, self.hop_samples, self.min_samples, frontend)

    def score_windows(
        self, cut: Sequence[windows.Window], norm: Normalization | None = None, heard: Moments | None = None
    ) -> list[Probs | None]:
        """Per-head probabilities of each window (``None`` for a silent one), one model call per window.

        ``norm`` overrides the contract's normalization (for embedding adaptation: the embedding statistics the
        adapted head is fed); the voiced windows' raw features (or embeddings) are added to ``heard`` when given
        (speaker adaptation)."""
        c = self._model.contract
        results: list[Probs | None] = []
        for w in cut:
            if _peak(w.samples) < SILENCE_PEAK:
                results.append(None)
                continue
            if c.embedding is not None and (norm is not None or heard is not None):
                out, embedding = self._model.run_embedding(c.model_input(w.samples)[None], norm)
                if heard is not None:
                    heard.add(embedding)
                results.append({head: p[0] for head, p in out.items()})
                continue
            if w.rows is None:
                x = c.model_input(w.samples, norm)
            else:
                features = c.frontend.pool(w.rows)
                if heard is not None:
                    heard.add(features)
                x = c.normalize(features, norm)
            out = self._model.run(x[None])
            results.append({head: p[0] for head, p in out.items()})
        return results

    def window_prediction(self, probs: Probs | None, start: int, end: int) -> Prediction:
        """The prediction of one window scored by :meth:`score_windows` (``start``/``end`` in samples)."""
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

    def remember(self, heard: Moments) -> None:
        """Add one utterance's feature statistics to the profile (thread-safe)."""
        if self.profile is not None:
            with self._lock:
                self.profile.add_moments(heard)

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
        :class:`Moments` that scoring fills with the utterance's voiced features, added to the
        profile when the block ends."""
        if self.profile is None:
            yield None, None
            return
        with self._lock:
            heard = Moments()
            yield self.profile_normalization(), heard
            self.profile.add_moments(heard)

    def profile_normalization(self) -> Normalization | None:
        """The statistics the profile gives the next utterance (``None``: no profile, or an embedding model
        whose profile is not ready yet, which then runs its plain, un-adapted head)."""
        profile, c = self.profile, self._model.contract
        if profile is None:
            return None
        if c.embedding is not None:
            return profile.normalization(c.embedding.normalization) if profile.ready else None
        return profile.normalization(c.normalization)

    def _blocks(self, audio: AudioInput, sample_rate: int | None) -> Iterator[np.ndarray]:
        """The audio as mono float32 blocks at the model's rate, read, converted and resampled block by block."""
        if isinstance(audio, np.ndarray):
            if sample_rate is None:
                raise AudioError("a numpy array needs sample_rate= (its rate in Hz)")
            rate, blocks = check_rate(sample_rate), _array_blocks(audio)
            yield from self._resampled(blocks, rate)
            return
        if sample_rate is not None:
            raise AudioError("sample_rate= applies to numpy arrays only; encoded audio carries its rate")
        with AudioFile(audio) as f:  # decoded block by block, however long the file
            yield from self._resampled(f.blocks(BLOCK), f.rate)

    def _resampled(self, blocks: Iterable[np.ndarray], rate: int) -> Iterator[np.ndarray]:
        if rate == self.sample_rate:
            yield from blocks
            return
        resampler = StreamResampler(rate, self.sample_rate)
        for block in blocks:
            yield resampler.process(block)
        yield resampler.flush()

    def _scan(
        self, audio: AudioInput, sample_rate: int | None, norm: Normalization | None, heard: Moments | None
    ) -> tuple[list[Probs | None], list[tuple[int, int]], int, np.ndarray | None]:
        """Every window's probabilities and bounds, the signal's length and, for a model with transcript
        heads (which decode the whole clip at once), the signal itself."""
        cutter = self.cutter()
        probs: list[Probs | None] = []
        bounds: list[tuple[int, int]] = []
        kept: list[np.ndarray] = []
        for block in self._blocks(audio, sample_rate):
            if self._ctc:
                kept.append(block)
            cut = cutter.push(block)
            probs += self.score_windows(cut, norm, heard)
            bounds += [(w.start, w.end) for w in cut]
        n = cutter.received
        if n < self.min_samples:
            raise AudioError(
                f"audio is too short: {n / self.sample_rate:.3f} s, "
                f"this model needs at least {self.contract.min_seconds:g} s"
            )
        cut = cutter.finish()
        probs += self.score_windows(cut, norm, heard)
        bounds += [(w.start, w.end) for w in cut]
        return probs, bounds, n, (np.concatenate(kept) if kept else None)

    def _aggregate(self, probs: list[Probs | None], n_samples: int) -> Prediction:
        voiced = [p for p in probs if p is not None]
        if not voiced:
            return self.window_prediction(None, 0, n_samples)
        ctc = {h.name for h in self._ctc}
        if len(voiced) == 1:  # one voiced window (every clip up to 3 s): its scores are the mean, without np.mean
            mean = {head: p for head, p in voiced[0].items() if head not in ctc}
        else:
            mean = {head: np.mean([p[head] for p in voiced], axis=0) for head in voiced[0] if head not in ctc}
        return self.window_prediction(mean, 0, n_samples)

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


def _peak(samples: np.ndarray) -> float:
    """The largest absolute sample, without an ``abs`` copy of a window per call."""
    return max(float(samples.max()), -float(samples.min()))


def _array_blocks(samples: np.ndarray) -> Iterator[np.ndarray]:
    """A sample array as mono float32 blocks of :data:`BLOCK` frames or more (``to_mono_float`` on each,
    so no whole-signal copy is made); a 2-D array is split along its frames axis, the longer one."""
    if isinstance(samples, np.ndarray) and samples.ndim == 2 and samples.shape[1] > samples.shape[0]:
        samples = samples.T  # channels first: the shorter axis holds the channels, as to_mono_float reads it
    if not isinstance(samples, np.ndarray) or samples.ndim not in (1, 2) or len(samples) <= 2 * BLOCK:
        yield to_mono_float(samples)
        return
    starts = range(0, len(samples) - BLOCK, BLOCK)  # the last block takes the remainder: never a short one
    for i, start in enumerate(starts):
        yield to_mono_float(samples[start : start + BLOCK] if i < len(starts) - 1 else samples[start:])


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
        rec, profile = self._rec, self._rec.profile
        self._norm = rec.profile_normalization()
        self._heard = Moments() if profile is not None else None
        self._cutter = rec.cutter()
        self._finished = False
        self._resampler = StreamResampler(self._rate, rec.sample_rate) if self._rate != rec.sample_rate else None

    @property
    def buffered_samples(self) -> int:
        """Samples held in memory now (bounded whatever the stream's length)."""
        return self._cutter.buffered_samples

    def accept(self, chunk: np.ndarray) -> list[Prediction]:
        """Add samples (any dtype ``load_audio`` takes, mono or multi-channel); returns finished windows."""
        if self._finished:
            raise AudioError("stream already flushed; call reset() to start a new one")
        if isinstance(chunk, np.ndarray) and chunk.size == 0:
            return []
        samples = to_mono_float(chunk)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        return self._emit(self._cutter.push(samples))

    def flush(self) -> list[Prediction]:
        """End of audio: the remaining windows, the last aligned to the end, as ``predict_segments`` has them."""
        if self._finished:
            return []
        self._finished = True
        out = []
        if self._resampler is not None:
            out = self._emit(self._cutter.push(self._resampler.flush()))
        out += self._emit(self._cutter.finish())
        if self._heard is not None:
            self._rec.remember(self._heard)
        return out

    def _emit(self, cut: list[windows.Window]) -> list[Prediction]:
        probs = self._rec.score_windows(cut, self._norm, self._heard)
        return [self._rec.window_prediction(p, w.start, w.end) for p, w in zip(probs, cut)]
