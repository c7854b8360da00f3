"""SpeakerProfile: on-device adaptation to the voice a terminal hears most.

Emotion cues ride on top of who is speaking: pitch, timbre and the microphone shift every
feature. A model trained with each speaker's own feature statistics (``edge-ser train
--normalization speaker``) removes that offset, but at run time it needs the *current user's*
statistics. A profile keeps them as running per-feature mean and variance of the front-end
features of the utterances already heard (Chan et al.'s pairwise update: fixed memory, work
proportional to the new audio only), and hands the Recognizer a normalization built from them.

Causality is by construction: the Recognizer normalizes an utterance with the statistics as they
stood *before* it, and adds the utterance only afterwards. Until ``min_utterances`` utterances
are in, the model's own global statistics are used; with ``prior=n`` they also stay in the mix
afterwards as ``n`` pseudo-utterances (shrinkage), so statistics of the first few utterances --
noisiest for utterance-level features, one row per utterance -- move the model only as far as
they deserve. A profile is a few kilobytes of JSON.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from .errors import ProfileError
from .frontend import FrontEnd, Normalization

FORMAT = "edge-ser-speaker-profile"
VERSION = 1


class Moments:
    """Count, mean and summed squared deviations of feature rows, merged pairwise (Chan et al.)."""

    def __init__(self) -> None:
        self.count = 0.0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, features: np.ndarray) -> None:
        """Add the rows of a ``(frames, n_features)`` matrix."""
        x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        if len(x):
            mean = x.mean(axis=0)
            self.merge(float(len(x)), mean, ((x - mean) ** 2).sum(axis=0))

    def merge(self, count: float, mean: np.ndarray, m2: np.ndarray) -> None:
        if self.mean is not None and len(mean) != len(self.mean):
            raise ProfileError(f"features have {len(mean)} dimensions, the profile {len(self.mean)}")
        if self.mean is None:
            self.count, self.mean, self.m2 = count, mean.copy(), m2.copy()
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / total)
        self.count = total


class SpeakerProfile:
    """Running feature statistics of one speaker (or one device's main user).

    ``min_utterances``: how many utterances must be in before the profile replaces the model's
    global statistics. ``memory``: the most frames the statistics represent; beyond it older
    audio is down-weighted so the profile follows a changing voice or microphone (None: never).
    ``prior``: how many utterances' worth of the model's global statistics are blended into the
    profile's (0: none; ``SpeakerProfile(min_utterances=1, prior=3)`` adapts from the first
    utterance on without a cliff, see docs/adaptation.md). ``frozen``: set it to stop learning (e.g.
    after an explicit enrolment); the statistics are still used.
    """

    def __init__(self, min_utterances: int = 5, memory: float | None = None, prior: float = 0.0) -> None:
        if min_utterances < 1:
            raise ProfileError("min_utterances must be at least 1")
        if memory is not None and memory <= 0:
            raise ProfileError("memory must be a positive number of frames")
        if not (math.isfinite(prior) and prior >= 0):
            raise ProfileError("prior must be a non-negative number of utterances")
        self.min_utterances = int(min_utterances)
        self.memory = None if memory is None else float(memory)
        self.prior = float(prior)
        self.frontend: dict[str, Any] | None = None
        self.frozen = False
        self.reset()

    def reset(self) -> None:
        """Forget the speaker: back to the model's global statistics."""
        self.utterances = 0
        self._moments = Moments()

    @property
    def frames(self) -> float:
        """How many feature frames the statistics represent."""
        return self._moments.count

    @property
    def ready(self) -> bool:
        """True once enough utterances are in for the profile to be used."""
        return self.utterances >= self.min_utterances

    def bind(self, features: FrontEnd | dict[str, Any]) -> None:
        """Tie the profile to the features it holds — a front-end, or a model's embedding space
        (:meth:`edge_ser.contract.EmbeddingAdaptation.profile_spec`); a profile built on other features is refused."""
        spec = features.to_dict() if isinstance(features, FrontEnd) else dict(features)
        if self.frontend is None:
            self.frontend = spec
        elif self.frontend != spec:
            kind = "embedding space" if "embedding" in (spec.get("kind"), self.frontend.get("kind")) else "front-end"
            raise ProfileError(f"this speaker profile was built with a different {kind} than the model's")

    def add(self, *features: np.ndarray) -> None:
        """Add one utterance, given as one or more ``(frames, n_features)`` feature matrices
        (explicit enrolment: ``profile.add(FrontEnd(...)(neutral_utterance))``)."""
        utterance = Moments()
        for f in features:
            utterance.add(f)
        self.add_moments(utterance)

    def add_moments(self, utterance: Moments) -> None:
        """Add one utterance given as its accumulated :class:`Moments` (what a stream collects)."""
        if utterance.mean is None or self.frozen:
            return
        m = self._moments
        if self.memory is not None and m.mean is not None and m.count + utterance.count > self.memory:
            keep = max(self.memory - utterance.count, 0.0) / m.count  # down-weight older audio
            m.count, m.m2 = m.count * keep, m.m2 * keep
            if m.count == 0:
                m.mean = m.m2 = None
        m.merge(utterance.count, utterance.mean, utterance.m2)
        self.utterances += 1

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and standard deviation of everything added (population std, floored)."""
        m = self._moments
        if m.mean is None:
            raise ProfileError("the profile is empty")
        return m.mean.copy(), np.maximum(np.sqrt(m.m2 / m.count), 1e-5)

    def normalization(self, fallback: Normalization) -> Normalization:
        """The normalization to use now: the profile's statistics once ready (blended with global
        ``fallback`` statistics as ``prior`` pseudo-utterances), else ``fallback``."""
        if not self.ready:
            return fallback
        m = self._moments
        if fallback.mode == "global" and m.mean is not None and len(fallback.mean) != len(m.mean):
            raise ProfileError(f"the model has {len(fallback.mean)} statistics, the profile {len(m.mean)}")
        if self.prior and fallback.mode == "global" and m.mean is not None:
            g_mean, g_std = (np.asarray(v, dtype=np.float64) for v in (fallback.mean, fallback.std))
            pseudo = self.prior * m.count / max(self.utterances, 1)  # in frames, as the profile counts
            blended = Moments()
            blended.merge(pseudo, g_mean, g_std**2 * pseudo)
            blended.merge(m.count, m.mean, m.m2)
            m = blended
        mean, std = m.mean, np.maximum(np.sqrt(m.m2 / m.count), 1e-5)
        return Normalization("global", tuple(mean.tolist()), tuple(std.tolist()))

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "min_utterances": self.min_utterances,
            "memory": self.memory,
            "prior": self.prior,
            "frontend": self.frontend,
            "utterances": self.utterances,
            "frames": self._moments.count,
            "mean": None if self._moments.mean is None else self._moments.mean.tolist(),
            "m2": None if self._moments.m2 is None else self._moments.m2.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> SpeakerProfile:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ProfileError("not an edge-ser speaker profile")
        if d.get("version") != VERSION:
            raise ProfileError(f"speaker profile version {d.get('version')!r} is not supported")
        try:
            profile = cls(int(d["min_utterances"]), d.get("memory"), float(d.get("prior", 0.0)))
            profile.frontend = d.get("frontend")
            profile.utterances = int(d["utterances"])
            if d.get("mean") is not None:
                count = float(d["frames"])
                mean = np.asarray(d["mean"], dtype=np.float64)
                m2 = np.asarray(d["m2"], dtype=np.float64)
                if mean.shape != m2.shape or mean.ndim != 1:
                    raise ValueError("mean and m2 differ in shape")
                if not (np.isfinite(mean).all() and np.isfinite(m2).all() and math.isfinite(count)):
                    raise ValueError("statistics are not finite")
                if count <= 0 or (m2 < 0).any() or profile.utterances < 1:
                    raise ValueError("frames, m2 and utterances must be positive")
                profile._moments.merge(count, mean, m2)
            elif profile.utterances:
                raise ValueError("utterances counted but no statistics")
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ProfileError(f"malformed speaker profile: {str(exc)[:200]}") from None
        return profile

    def save(self, path: str | os.PathLike) -> None:
        """Write the profile as JSON (a few kilobytes; no pickle)."""
        try:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, allow_nan=False)
        except OSError as exc:
            raise ProfileError(f"{os.fsdecode(path)}: cannot save speaker profile ({exc.strerror or exc})") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpeakerProfile:
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(json.load(f, parse_constant=_reject_constant))
        except OSError as exc:
            raise ProfileError(f"{os.fsdecode(path)}: cannot read speaker profile ({exc.strerror or exc})") from None
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{os.fsdecode(path)}: not a speaker profile (invalid JSON: {exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # NaN/Infinity, text that is not UTF-8, absurd nesting
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise ProfileError(f"{os.fsdecode(path)}: not a speaker profile ({reason})") from None

    def __repr__(self) -> str:
        return f"SpeakerProfile(utterances={self.utterances}, ready={self.ready})"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a profile can hold")
