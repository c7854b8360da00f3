"""Packages: ``edge_ser`` only, plus the training-side tooling in an editable install (see _build/backend.py)."""

import os

from setuptools import find_packages, setup

packages = find_packages(include=["edge_ser", "edge_ser.*"])
if os.environ.get("EDGE_SER_TOOLING"):
    packages += find_packages(
        include=[f"{name}{tail}" for name in ("models", "export", "benchmarks") for tail in ("", ".*")]
    )
setup(packages=packages)
