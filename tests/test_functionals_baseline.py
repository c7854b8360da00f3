"""benchmarks/functionals_baseline.py: functionals, the causal protocol, a run on a generated corpus."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from test_train import make_corpus, write_manifest  # noqa: E402

from benchmarks import functionals_baseline as fb  # noqa: E402
from edge_ser.frontend import Normalization  # noqa: E402


def test_causal_uses_only_earlier_utterances():
    rng = np.random.default_rng(1)
    x, training = rng.standard_normal((12, 3)), rng.standard_normal((50, 3)) + 5.0
    fallback = Normalization.fit([training])
    order = rng.permutation(12)
    for budget in (5, 8, None):
        out = fb.causal(x, order, budget, fallback)
        for position, i in enumerate(order):
            heard = order[: position if budget is None else min(position, budget)]
            rows = x[heard] if len(heard) >= fb.MIN_UTTERANCES else training
            np.testing.assert_allclose(out[i], (x[i] - rows.mean(0)) / rows.std(0), rtol=1e-5, atol=1e-5)
        # changing a later utterance never changes an earlier one's normalized vector
        changed = x.copy()
        changed[order[-1]] += 100.0
        again = fb.causal(changed, order, budget, fallback)
        np.testing.assert_allclose(again[order[:-1]], out[order[:-1]])


def test_runs_on_a_generated_corpus(tmp_path: Path):
    corpus = make_corpus(tmp_path / "toy", per_speaker=6)
    manifest = write_manifest(corpus, tmp_path / "toy" / "manifest.csv")
    out = tmp_path / "functionals.md"
    assert (
        fb.main(["--dataset", "csv", "--data", str(manifest), "--json", str(tmp_path / "r.json"), "--out", str(out)])
        == 0
    )
    text = out.read_text()
    assert "## csv" in text and "transductive" in text and "mean ± std" in text
    result = json.loads((tmp_path / "r.json").read_text())
    assert len(result["per_fold"]) == 4  # leave one of four speakers out
    assert result["summary"]["global"][0] > 0.9  # tones vs noise: separable from functionals alone
    fb.main(["--dataset", "csv", "--data", str(manifest), "--out", str(out)])
    assert out.read_text().count("## csv") == 1  # the corpus' section is replaced, not appended again
