"""FunctionalsMLP: a small MLP on utterance functionals (the ``functionals`` front-end).

Why this shape: with a handful of training speakers, the features that carry across speakers are
an utterance's statistics (level, spread, extremes and movement of its MFCC and log-mel bands),
and the speaker's own offset on them is best removed at that level: normalizing each speaker's
functional vectors by that speaker's statistics raised a logistic regression from 36 to 53 UA on
CASIA and from 45 to 53 on RAVDESS, causally after 20 utterances
(``benchmarks/results/functionals.md``), where frame-level normalization gave EdgeCNN and StatsNet
+7-8 on CASIA and -0.4/+3.9 on RAVDESS (``benchmarks/results/adaptation.md``).
The front-end computes the functionals, so a :class:`edge_ser.SpeakerProfile` adapts exactly what
the model was trained on (``--normalization speaker``). The network itself is one hidden layer:
~0.1M parameters, ~0.1M MACs per window.
"""

from __future__ import annotations

import torch
from torch import nn


class FunctionalsMLP(nn.Module):
    """Functionals ``(batch, rows, n_features)`` (one row per window) -> embedding ``(batch, hidden)``."""

    input_kind = "functionals"

    def __init__(self, n_features: int | None = None, hidden: int = 128, input_dropout: float = 0.2) -> None:
        super().__init__()
        if not n_features:
            raise ValueError("FunctionalsMLP needs the functionals front-end (n_features)")
        self.mlp = nn.Sequential(
            nn.Dropout(input_dropout),
            nn.Linear(n_features, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
        )
        self.embedding_dim = hidden
        self.min_frames = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.mean(dim=1))
