"""Printing a benchmark's Markdown report and saving it where the command line asked."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def emit(lines: list[str], out: Path | None) -> str:
    """Print ``lines`` as one Markdown text and, if ``out`` is given, write it there too."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        write_atomic(out, text)
    return text


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so that two queues
    rebuilding the same table never leave (or read) a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo; the platform's processor or machine elsewhere)."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def replace_section(path: Path, head: str, name: str, text: str) -> None:
    """Write ``text`` (a ``## name ...`` section) into the Markdown file ``path``: it replaces the section of that
    name, or is appended; a new file starts with ``head``."""
    old = path.read_text() if path.exists() else head
    sections = [s for s in old.split("\n## ")[1:] if not s.startswith(f"{name} ")]
    body = "".join("\n## " + s.rstrip("\n") + "\n" for s in sections)
    write_atomic(path, old.split("\n## ")[0].rstrip("\n") + "\n" + body + "\n" + text)
