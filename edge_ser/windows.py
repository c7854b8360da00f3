"""How audio longer than the model's analysis window is cut into overlapping windows.

Windows of ``window`` samples start every ``hop`` samples while they fit; if samples remain
after the last one, a final window is aligned to the end. Audio no longer than one window
is a single window. The streaming recognizer emits exactly the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frontend import FrontEnd


def plan(n_samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """``(start, end)`` sample bounds of every analysis window for ``n_samples`` samples."""
    if n_samples <= window:
        return [(0, n_samples)]
    bounds = [(s, s + window) for s in range(0, n_samples - window + 1, hop)]
    if bounds[-1][1] < n_samples:
        bounds.append((n_samples - window, n_samples))
    return bounds


@dataclass
class Window:
    """One analysis window: its sample bounds, its samples and, for a spectral front-end, its frame rows."""

    start: int
    end: int
    samples: np.ndarray
    rows: np.ndarray | None


class Cutter:
    """Cuts a signal fed in blocks of any size into the windows :func:`plan` gives, in order, holding only
    about one window of samples whatever the length.

    With a spectral ``frontend`` each window comes with its frame rows (:meth:`FrontEnd.frame_rows`),
    and the frames are computed once for the whole signal, not once per overlapping window: a window
    starting on the frame grid takes its inner rows from a shared cache, and only its last frame
    (zero-padded at the window's end) and its first (whose pre-emphasis starts afresh, unless the
    analysis window starts at zero, as Hann's does, which makes that difference vanish) are its own,
    so the rows equal the window's own analysis. Each window grows the cache by one hop of frames,
    computed in one pass with its own frames, so what is computed does not depend on how the signal
    was split into blocks.
    """

    def __init__(self, window: int, hop: int, min_samples: int, frontend: FrontEnd | None = None) -> None:
        self.window, self.hop, self.min_samples = window, hop, min_samples
        spectral = frontend is not None and frontend.kind != "waveform"
        self.frontend = frontend if spectral else None
        self._shared = False
        if self.frontend is not None:
            self._frames = self.frontend.analysis_frames(window)
            self._shared = hop % self.frontend.frame_step == 0 and self._frames > 2
            self._own_first = bool(self.frontend.frame_window[0] != 0)
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # signal index of _buffer[0]
        self._received = 0
        self._next_start = 0
        self._last_end = 0
        self._cache = np.zeros((0, self.frontend.frame_width if self.frontend else 1), np.float32)
        self._cache_start = 0  # frame index of _cache[0]

    @property
    def received(self) -> int:
        return self._received

    @property
    def buffered_samples(self) -> int:
        return len(self._buffer)

    def push(self, samples: np.ndarray) -> list[Window]:
        """Add samples; returns the windows they complete."""
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float32)])
        self._received += len(samples)
        out = []
        while self._next_start + self.window <= self._received:
            out.append(self._cut(self._next_start, self._next_start + self.window, regular=True))
            self._next_start += self.hop
        keep_from = max(min(self._next_start, self._received - self.window), 0)
        if keep_from > self._buffer_start:
            self._buffer = self._buffer[keep_from - self._buffer_start :]
            self._buffer_start = keep_from
        return out

    def finish(self) -> list[Window]:
        """End of signal: the last window, aligned to the end, as :func:`plan` has it (none if too short)."""
        n = self._received
        if n < self.window:
            return [self._cut(0, n, regular=False)] if n >= self.min_samples and n > 0 else []
        if self._last_end < n:
            return [self._cut(n - self.window, n, regular=False)]
        return []

    def _samples(self, start: int, end: int) -> np.ndarray:
        return self._buffer[start - self._buffer_start : end - self._buffer_start]

    def _cut(self, start: int, end: int, regular: bool) -> Window:
        self._last_end = max(self._last_end, end)
        samples = self._samples(start, end)
        if self.frontend is None:
            return Window(start, end, samples, None)
        if not (regular and self._shared):
            return Window(start, end, samples, self.frontend.frame_rows(samples))
        fe, step = self.frontend, self.frontend.frame_step
        first = start // step
        if start == 0:  # the first window: its own analysis, whose inner rows start the cache
            rows = fe.frame_rows(samples)
            self._cache, self._cache_start = rows[1:-1], 1
            return Window(start, end, samples, rows)
        last = (self._frames - 1) * step
        pieces = [(samples, None)] * self._own_first + [(samples[last:], float(samples[last - 1]))]
        inner, edges = self._shared_rows(first + self._own_first, first + self._frames - 1, pieces)
        return Window(start, end, samples, np.concatenate([edges[:-1], inner, edges[-1:]]))

    def _shared_rows(
        self, g0: int, g1: int, pieces: list[tuple[np.ndarray, float | None]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows of signal frames ``g0 .. g1-1``, each computed once (the cache grows to ``g1``, is trimmed to
        ``g0``), and the rows of the single frames ``pieces`` (see :meth:`FrontEnd.frame_rows`)."""
        fe, step, length = self.frontend, self.frontend.frame_step, self.frontend.frame_length
        end = self._cache_start + len(self._cache)
        if g0 > end:
            self._cache, self._cache_start, end = self._cache[:0], g0, g0
        grow = max(g1 - end, 0)
        a, b = end * step, (g1 - 1) * step + length
        previous = float(self._buffer[a - 1 - self._buffer_start]) if grow and a > 0 else None
        rows = fe.frame_rows(self._samples(a, b) if grow else self._buffer[:0], previous, grow, pieces)
        self._cache = np.concatenate([self._cache[max(g0 - self._cache_start, 0) :], rows[:grow]])
        self._cache_start = max(g0, self._cache_start)
        return self._cache[: g1 - g0], rows[grow:]
