"""How audio longer than the model's analysis window is cut into overlapping windows.

Windows of ``window`` samples start every ``hop`` samples while they fit; if samples remain
after the last one, a final window is aligned to the end. Audio no longer than one window
is a single window. The streaming recognizer emits exactly the same windows.
"""

from __future__ import annotations


def plan(n_samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """``(start, end)`` sample bounds of every analysis window for ``n_samples`` samples."""
    if n_samples <= window:
        return [(0, n_samples)]
    bounds = [(s, s + window) for s in range(0, n_samples - window + 1, hop)]
    if bounds[-1][1] < n_samples:
        bounds.append((n_samples - window, n_samples))
    return bounds
