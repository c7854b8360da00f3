"""What a prediction returns: small, typed, JSON-ready."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HeadResult:
    """One head's answer: the top label and a score per label (summing to 1)."""

    label: str
    scores: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "scores": self.scores}


@dataclass(frozen=True)
class Prediction:
    """The emotion for a stretch of audio (``start``..``end`` seconds), plus auxiliary heads.

    ``silent`` is True when the stretch is digital silence (peak below -80 dBFS): there is no
    voice to judge, so ``label`` is None and the scores are uniform. ``heads`` holds the
    auxiliary classification heads (gender, speaker, ...); ``transcripts`` the greedy CTC
    transcript of each transcript head (``chars``, ``syllables``, ...) when the model has one.
    """

    label: str | None
    scores: dict[str, float]
    start: float
    end: float
    heads: dict[str, HeadResult] = field(default_factory=dict)
    silent: bool = False
    transcripts: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """Score of the top label (uniform share when silent)."""
        return self.scores[self.label] if self.label is not None else 1.0 / len(self.scores)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "scores": self.scores,
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "heads": {k: v.to_dict() for k, v in self.heads.items()},
            "silent": self.silent,
            **({"transcripts": self.transcripts} if self.transcripts else {}),
        }
