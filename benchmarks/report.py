"""Printing a benchmark's Markdown report and saving it where the command line asked."""

from __future__ import annotations

from pathlib import Path


def emit(lines: list[str], out: Path | None) -> str:
    """Print ``lines`` as one Markdown text and, if ``out`` is given, write it there too."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text
