"""The models shipped inside the package: they load, keep their contract and card, and their
recorded fold result is reproduced from the corpus (marked test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import voiced

from edge_ser import Recognizer, SpeakerProfile
from edge_ser.contract import fold_score_key
from edge_ser.model import ASSETS, SHIPPED, shipped_models

ROOT = Path(__file__).resolve().parents[1]
# The tiny tier (python -m export.ship); the base and small tiers (python -m export.base_tier) have
# tests/test_base_tier.py.
PRESENT = [name for name in SHIPPED if (ASSETS / SHIPPED[name]).is_file() and not name.endswith(("-base", "-small"))]
EXPECTED = {
    "english": ("ravdess", 8),
    "chinese": ("casia", 6),
    "english-adaptive": ("ravdess", 8),
    "chinese-adaptive": ("casia", 6),
}

pytestmark = pytest.mark.skipif(not PRESENT, reason="no model ships yet (python -m export.ship NAME builds them)")


@pytest.mark.parametrize("name", PRESENT)
def test_shipped_model_loads_with_its_contract_and_card(name):
    rec = Recognizer(name)
    from export.ship import RECIPES

    dataset, n_emotions = EXPECTED[name]
    kept = set(RECIPES[name].keep_aux)
    c = rec.contract
    assert c.provenance["dataset"] == dataset and len(rec.labels) == n_emotions
    assert {h.name for h in c.heads} == {"emotion"} | kept  # the file outputs what its recipe keeps
    assert (ASSETS / SHIPPED[name]).stat().st_size < 1024 * 1024 and "int8" in c.provenance
    assert c.provenance["command"] == f"python -m export.ship {name}"
    cv = c.provenance["cross_validation"]
    assert cv["folds"] >= 4 and 0.0 < cv["int8_ua_mean"] < 1.0
    card = (ASSETS / SHIPPED[name]).with_suffix(".md").read_text()
    assert f"python -m export.ship {name}" in card and "ONNX INT8 UA" in card
    if dataset == "ravdess":
        assert "non-commercial" in card
    assert (c.adaptation == "speaker") == name.endswith("-adaptive")
    if c.adaptation == "speaker":
        ev = c.provenance["adaptation_eval"]
        assert ev["folds"] == cv["folds"] and {"0", "5", "all", "transductive"} <= set(ev["ua_mean"])
        assert "## Speaker adaptation" in card and "SpeakerProfile(min_utterances=1, prior=3)" in card
    p = rec.predict(voiced(2.0), sample_rate=16000)
    assert p.label in rec.labels and sum(p.scores.values()) == pytest.approx(1.0, abs=1e-6)
    transcripts = {h.name for h in c.heads if h.kind == "ctc"}
    assert set(p.heads) == kept - transcripts and set(p.transcripts) == transcripts
    assert rec.predict(np.zeros(16000, np.float32), sample_rate=16000).silent


@pytest.mark.parametrize("name", PRESENT)
def test_shipped_model_stays_within_the_tiny_tier(name):
    """Issue 20's budget, on the file itself: <= 0.4M parameters (the graph's weights and the contract's count)
    and <= 30 M multiply-accumulates for 3 s of audio (counted by ONNX Runtime on the windows it runs)."""
    import onnx
    from onnx import numpy_helper

    from edge_ser.macs import macs_per_second

    path = ASSETS / SHIPPED[name]
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    in_graph = sum(w.size for w in weights if w.size > 1)  # scalars: quantization scales, shapes, constants
    contract = Recognizer(name).contract
    assert 0.05e6 < in_graph <= 0.4e6 and 0.05e6 < contract.parameters <= 0.4e6
    assert 0.05e6 < macs_per_second(path, contract, 3.0) * 3.0 <= 30e6


@pytest.mark.parametrize("name", [n for n in PRESENT if n.endswith("-adaptive")])
def test_adaptive_models_learn_their_user(name):
    profile = SpeakerProfile(min_utterances=1, prior=3)
    rec = Recognizer(name, profile=profile)
    clips = [voiced(1.0 + 0.2 * k, seed=k) for k in range(4)]
    first = rec.predict(clips[0], sample_rate=16000)
    assert Recognizer(name).predict(clips[0], sample_rate=16000).scores == first.scores  # empty profile: global
    for clip in clips[1:]:
        rec.predict(clip, sample_rate=16000)
    assert profile.utterances == 4
    assert rec.predict(clips[0], sample_rate=16000).scores != first.scores  # normalized with the user's statistics


def test_default_and_aliases():
    assert "default" in shipped_models() or "english" not in PRESENT
    if "english" in PRESENT:
        assert Recognizer().path == Recognizer("english").path
    if "chinese" in PRESENT:
        assert Recognizer("casia").path == Recognizer("chinese").path


@pytest.mark.corpus
@pytest.mark.parametrize("name", PRESENT)
def test_one_fold_rescored_matches_the_card(name, datasets_dir):
    """The kept fold model, scored on that fold's test speakers now, gives the UA the card records."""
    from export.ship import RECIPES
    from models.data.corpora import load_corpus
    from models.data.protocols import make_folds
    from models.training.metrics import scores

    recipe = RECIPES[name]
    model = ROOT / "tests" / "assets" / f"{name}-{recipe.test_fold}.int8.onnx"
    recorded = Recognizer(name).contract.provenance["cross_validation"]["per_fold"][recipe.test_fold]["int8_ua"]
    corpus = load_corpus(recipe.dataset, datasets_dir / recipe.dataset)
    fold = {f.name: f for f in make_folds(corpus, Recognizer(model).contract.provenance["protocol"])}[recipe.test_fold]
    rec = Recognizer(model)
    test = [corpus.utterances[i] for i in fold.test]
    predictions = rec.predict_batch([u.path for u in test])
    labels = list(rec.labels)
    y = [labels.index(u.emotion) for u in test]
    guess = [labels.index(p.label) if p.label else 0 for p in predictions]
    assert abs(scores(np.array(y), np.array(guess), len(labels))["ua"] - recorded) <= 0.01


@pytest.mark.parametrize("name", PRESENT)
def test_predict_batch_and_stream_agree_exactly(name):
    """Whatever the batching or chunking, every shipped model gives the same results, bit for bit."""
    rec = Recognizer(name)
    clips = [voiced(s, rate=rate, seed=i) for i, (s, rate) in enumerate(((2.2, 16000), (10.3, 44100), (5.0, 8000)))]
    rates = (16000, 44100, 8000)
    singles = [rec.predict(c, sample_rate=r) for c, r in zip(clips, rates)]
    for clip, rate, single in zip(clips, rates, singles):
        assert rec.predict_batch([clip], sample_rate=rate) == [single]
        stream = rec.stream(sample_rate=rate)
        streamed = [p for i in range(0, len(clip), 733) for p in stream.accept(clip[i : i + 733])] + stream.flush()
        assert streamed == rec.predict_segments(clip, sample_rate=rate)


@pytest.mark.parametrize("name", [n for n in PRESENT if not n.endswith("-adaptive")])
def test_readme_and_results_show_the_cards_figures(name):
    """README's model table and benchmarks/RESULTS.md quote the fold means the shipped file's contract records
    (the card is written from the same record), so a re-shipped model cannot leave stale figures behind."""
    provenance = Recognizer(name).contract.provenance
    cv, key = provenance["cross_validation"], fold_score_key(provenance)  # the fold models of the file's kind
    figure = f"{100 * cv[key + '_mean']:.1f} ± {100 * cv[key + '_std']:.1f}"
    card = (ASSETS / SHIPPED[name]).with_suffix(".md").read_text()
    assert f"**{figure}**" in card
    (readme_row,) = [r for r in (ROOT / "README.md").read_text().splitlines() if r.startswith(f"| `{name}` ")]
    assert f"| {figure} (" in readme_row
    (results_row,) = [
        r
        for r in (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines()
        if r.startswith(f"| {name} (shipped) |")
    ]
    assert f"| {figure} |" in results_row
