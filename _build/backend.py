"""Build backend: setuptools, plus the training-side tooling in development installs only.

``pip install .`` builds a wheel of ``edge_ser`` and its model files alone, so site-packages gets no
top-level ``models``, ``export`` or ``benchmarks`` to collide with other projects' modules.
``pip install -e '.[train,dev]'`` (an editable install of a checkout) also maps those three
packages, so ``edge-ser train``/``export`` and the benchmarks keep running from the checkout.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 -- every other hook is setuptools' own


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001, ANN201
    os.environ["EDGE_SER_TOOLING"] = "1"  # read by setup.py
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
