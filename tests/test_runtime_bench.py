"""benchmarks.runtime's interleaved timing: every function runs every round, in an order that changes."""

import os
from unittest import mock


def test_interleaved_calls_each_function_every_round_in_shuffled_order():
    with mock.patch.dict(os.environ):  # the module pins BLAS threads for its own subprocesses
        from benchmarks.runtime import interleaved

    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    ms = interleaved(fns, runs=40, warmup=2)
    assert set(ms) == set(fns) and all(len(v) == 2 and min(v) >= 0 for v in ms.values())
    rounds = [calls[i : i + 4] for i in range(0, len(calls), 4)]
    assert len(rounds) == 42 and all(sorted(r) == list("abcd") for r in rounds)
    assert len({r[0] for r in rounds}) > 1  # not always the same function first (a fixed order favoured some)


def test_compute_rate_line_counts_the_default_models_macs():
    import re

    import numpy as np

    from edge_ser import Recognizer
    from edge_ser.macs import count_macs

    with mock.patch.dict(os.environ):
        from benchmarks.runtime import compute_rate_lines

    rec = Recognizer()
    x = np.zeros(rec.window_samples, np.float32)
    expected = count_macs(rec.path, {rec.contract.input_name: rec.contract.model_input(x)[None]})
    (line,) = compute_rate_lines(runs=3, size=64)
    reported = float(re.search(r"([0-9.]+) M MACs per window", line).group(1))
    assert abs(reported - expected / 1e6) < 0.01
    rates = [float(v) for v in re.findall(r"([0-9.]+) GMAC/s", line)]
    assert len(rates) == 2 and min(rates) > 0
