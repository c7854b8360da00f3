"""``python -m models.train``: the ``edge-ser train`` command (kept as a module entry for scripts and docs)."""

from __future__ import annotations

import sys

from models.training.cli import configure_parser, main, run

__all__ = ["configure_parser", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
