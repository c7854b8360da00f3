"""Printing a benchmark's Markdown report and saving it where the command line asked."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from edge_ser.bench import cpu_description


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
    """The CPU as the runtime's ``edge-ser bench`` names it: model, family and the instruction sets that change
    the figures (two CPUs that both call themselves "AMD EPYC" took 1.25 and 0.93 ms for `english` here)."""
    return cpu_description()


def replace_section(path: Path, head: str, name: str, text: str, keep_older: bool = False) -> None:
    """Write ``text`` (a ``## name ...`` section) into the Markdown file ``path``: it replaces the sections of that
    name, or is appended; a new file starts with ``head``. With ``keep_older`` (dated measurements, a history) it
    goes before the sections of that name, which stay."""
    old = path.read_text() if path.exists() else head
    sections = [s.rstrip("\n") + "\n" for s in old.split("\n## ")[1:]]
    same = [i for i, s in enumerate(sections) if s.startswith(f"{name} ")]
    new = text.removeprefix("## ").rstrip("\n") + "\n"
    if keep_older and same:
        sections.insert(same[0], new)
    else:
        sections = [s for i, s in enumerate(sections) if i not in same] + [new]
    write_atomic(path, old.split("\n## ")[0].rstrip("\n") + "\n" + "".join("\n## " + s for s in sections))


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """This process (and the processes it starts meanwhile) on one core while inside, for timings quoted "on one
    core"; the caller's cores afterwards (a test suite calling a benchmark keeps both of its cores)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


def pinned_section(title: str, body: Callable[[], list[str]], out: Path | None, head: str) -> str:
    """Run ``body`` pinned to one core and report its lines as the Markdown section ``## title (date)``: the CPU,
    numpy, the load average before and after, and this command line. Printed, and written into ``out`` above its
    earlier sections of that title, which stay (a dated history; a new file starts with ``head``)."""
    import numpy as np

    started, load = datetime.now(timezone.utc), os.getloadavg()
    with one_core():
        lines = body()
    module = Path(sys.argv[0]).stem
    text = "\n".join(
        [
            f"## {title} ({started:%Y-%m-%d %H:%M} UTC)",
            "",
            f"{cpu_name()} · {os.cpu_count()} cores on the machine, pinned to 1 · numpy {np.__version__} · load "
            f"average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end",
            "",
            f"Command: `python -m benchmarks.{module} " + shlex.join(sys.argv[1:]) + "`",
            "",
            *lines,
        ]
    )
    print(text)
    if out:
        replace_section(out, head, title, text + "\n", keep_older=True)
    return text
