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


def test_corpus_report_compares_the_front_ends_on_audio_files(tmp_path):
    """frontend_speed --corpus: clips drawn from each corpus folder, both front-ends' features and predict scores
    compared per shipped model. Against this commit's own front-end (CI's clone) nothing differs."""
    import subprocess

    import soundfile as sf
    from conftest import voiced

    with mock.patch.dict(os.environ):
        from benchmarks.frontend_speed import ROOT, corpus_report

    for corpus, n in (("one", 3), ("two", 1)):
        (tmp_path / corpus / "speaker").mkdir(parents=True)
        for i in range(n):
            sf.write(tmp_path / corpus / "speaker" / f"{i}.wav", voiced(2.5, seed=i), 16000)
    (tmp_path / "README.md").write_text("not a corpus")
    lines = corpus_report("HEAD", tmp_path, clips=2)
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("| `")]
    assert [r[0].strip() for r in rows] == ["`english`", "`chinese`"]
    assert all(int(r[1]) == 3 for r in rows)  # two of the first folder's three clips, the second's one
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "edge_ser"], cwd=ROOT).returncode
    if not dirty:  # a checkout whose edge_ser is its commit's: the same front-end on both sides
        assert all(float(v) == 0 for r in rows for v in r[2:5]) and all(r[5].strip() == "0" for r in rows)
