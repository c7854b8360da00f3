"""export.ship: cross-validate -> record -> train on all speakers -> INT8 with card, on a toy corpus."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from test_train import make_corpus, write_manifest  # noqa: E402

from edge_ser import Recognizer  # noqa: E402
from edge_ser.bench import cpu_description  # noqa: E402
from edge_ser.contract import fold_score_key  # noqa: E402
from export import (
    quantize,  # noqa: E402
    ship,  # noqa: E402
)
from export.quantize import SCHEMES  # noqa: E402
from models.training import TrainConfig  # noqa: E402


def test_ship_builds_a_self_describing_int8_model_with_its_fold_results(tmp_path: Path, monkeypatch):
    corpus = make_corpus(tmp_path / "toy", per_speaker=3)
    root = tmp_path / "datasets"
    root.mkdir()
    write_manifest(corpus, root / "csv")  # the csv corpus' root is its manifest
    training = TrainConfig(epochs=2, batch_size=8, window_seconds=0.5, hop_seconds=0.25)
    aux = {"gender": 0.3, "speaker": 0.1}
    recipe = ship.Recipe("csv", "pcnn", training, ("gender",), "s0", aux=aux, protocol="loso", folds="0,1")
    monkeypatch.setitem(ship.RECIPES, "toy", recipe)
    monkeypatch.setitem(ship.SHIPPED, "toy", "toy.int8.onnx")
    assets, tests, records = tmp_path / "assets", tmp_path / "test_assets", tmp_path / "records"
    sources = []
    rule = ship.apply_export_rule

    def keep_source(exported, cv_report, data, fold, runs=300, fp32=None):  # a copy of the export the rule starts from
        sources.append(tmp_path / "source.onnx")
        sources[-1].write_bytes(fp32.read_bytes())
        return rule(exported, cv_report, data, fold, runs, fp32)

    monkeypatch.setattr(ship, "apply_export_rule", keep_source)
    # timings where FP32 is the fastest variant (FP32 comes first), so the rule keeps it, as for the shipped files
    monkeypatch.setattr(quantize, "measure_latency", lambda paths, x, runs: [1.0 + i for i in range(len(paths))])
    out = ship.ship("toy", str(root), tmp_path / "runs", assets, tests, records, cache_dir=tmp_path / "cache")

    assert sorted(p.name for p in assets.iterdir()) == ["toy.int8.md", "toy.int8.onnx"]  # FP32 file not shipped
    rec = Recognizer(out)
    assert rec.contract.name == "edge-ser-toy"
    assert [h.name for h in rec.contract.heads] == ["emotion", "gender"]  # the recipe keeps gender, not speaker
    p = rec.predict(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1, sample_rate=16000)
    assert p.label in ("calm", "angry") and sum(p.scores.values()) == pytest.approx(1.0, abs=1e-5)
    prov = rec.contract.provenance
    assert prov["fold"] == "final" and prov["command"] == "python -m export.ship toy"
    assert prov["int8"]["scheme"] in SCHEMES and prov["int8"]["float_layers"] >= 0
    rule = prov["export"]  # the export rule replaced the INT8 export with the variant it picks
    assert rule["variant"] == rule["rule_choice"] and rule["variant"] in {v["name"] for v in rule["variants"]}
    assert "fold s0" in rule["evaluated_on"]
    assert rule["source"] == "fp32" and len(sources) == 1  # variants built from the checkpoint's own FP32 export
    assert rule["variant"] == "fp32"  # the fastest here, so the shipped weights are exactly that export's
    shipped, source = (
        {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer} for path in (out, sources[0])
    )
    assert shipped.keys() == source.keys() and all(np.array_equal(shipped[k], source[k]) for k in source)
    cv = prov["cross_validation"]
    report = json.loads((tmp_path / "runs" / "ship-toy-cv" / "report.json").read_text())
    assert cv["folds"] == 2 and cv["ua_mean"] == report["summary"]["ua_mean"]
    assert set(cv["per_fold"]) == {"s0", "s1"} and "int8_ua_mean" in cv and "fp32_ua_mean" in cv
    assert fold_score_key(prov) == "fp32_ua"  # the card's bold fold mean is the file's kind
    final = json.loads((tmp_path / "runs" / "ship-toy-final" / "report.json").read_text())
    assert final["training"]["epochs"] == ship.final_epochs(f["best_epoch"] for f in report["folds"].values())
    assert report["command"] == final["command"] == "python -m export.ship toy"
    card = out.with_suffix(".md").read_text()
    assert "python -m export.ship toy" in card and "ONNX INT8 UA" in card and "all speakers" in card
    assert "## Variants (the export rule)" in card and "(shipped)" in card
    assert "export rule" in card.splitlines()[2]  # the header describes the shipped variant, not the INT8 export
    assert f"included; {cpu_description()}, " in card  # its latency names the CPU, as `edge-ser bench` does
    mean_row = next(line for line in card.splitlines() if line.startswith("| **mean ± std** | | "))
    cells = [cell.strip() for cell in mean_row.strip("|").split("|")]
    assert cells[2] == f"**{100 * cv['fp32_ua_mean']:.1f} ± {100 * cv['fp32_ua_std']:.1f}**"
    assert cells[3] == f"{100 * cv['int8_ua_mean']:.1f} ± {100 * cv['int8_ua_std']:.1f}"
    assert card.count("## Variants (the export rule)") == 1 and "FP32, the checkpoint's own export" in card
    kept = tests / "toy-s0.int8.onnx"
    assert kept.is_file() and (records / "ship-toy-cv.json").is_file()
    assert Recognizer(kept).contract.provenance["fold"] == "s0"


def test_no_shipped_recipe_keeps_the_training_speaker_head():
    """It names training speakers only, so it means nothing to a user (docs/multi-task.md)."""
    assert all("speaker" not in recipe.keep_aux for recipe in ship.RECIPES.values())


def test_final_epochs_is_the_median_validation_choice():
    assert ship.final_epochs([3, 9, 5]) == 5
    assert ship.final_epochs([0]) == 1


def test_ship_an_adaptive_recipe_records_its_causal_evaluation(tmp_path: Path, monkeypatch):
    corpus = make_corpus(tmp_path / "toy", per_speaker=3)
    root = tmp_path / "datasets"
    root.mkdir()
    write_manifest(corpus, root / "csv")
    training = TrainConfig(epochs=2, batch_size=8, window_seconds=1.5, hop_seconds=0.5, normalization="speaker")
    folds = {"protocol": "loso", "folds": "0,1"}
    recipe = ship.Recipe("csv", "functionals_mlp", training, (), "s0", adaptation_prior=3.0, **folds)
    monkeypatch.setitem(ship.RECIPES, "toy-adaptive", recipe)
    monkeypatch.setitem(ship.SHIPPED, "toy-adaptive", "toy-adaptive.int8.onnx")
    records = tmp_path / "records"
    dirs = (tmp_path / "runs", tmp_path / "assets", tmp_path / "tests", records)
    out = ship.ship("toy-adaptive", str(root), *dirs, cache_dir=tmp_path / "cache")

    contract = Recognizer(out).contract
    assert contract.adaptation == "speaker" and contract.frontend.kind == "functionals"
    record = json.loads((records / "ship-toy-adaptive-adaptation.json").read_text())
    assert record["prior"] == 3.0 and record["command"] == "python -m export.ship toy-adaptive"
    ev = contract.provenance["adaptation_eval"]
    assert ev["prior"] == 3.0 and ev["folds"] == 2
    for k, mean in ev["ua_mean"].items():
        assert mean == pytest.approx(np.mean([f[k] for f in record["folds"].values()]))
    card = out.with_suffix(".md").read_text()
    assert "## Speaker adaptation" in card and "prior 3" in card and "transductive" in card


def test_a_recipe_passes_its_front_end_and_extra_corpora_to_the_run(tmp_path: Path):
    """Extra corpora are folders beside the recipe's own corpus under the data root; the front-end override and
    the extra corpora reach the training run unchanged."""
    frontend = {"kind": "logmel", "n_mels": 40}
    recipe = ship.Recipe(
        "casia", "edge_cnn", TrainConfig(epochs=1), (), "f0", frontend=frontend, extra={"ravdess": "ravdess-copy"}
    )
    run = recipe.run(tmp_path / "casia", tmp_path / "out", "cmd")
    assert run.frontend == frontend
    assert dict(run.extra) == {"ravdess": tmp_path / "ravdess-copy"}
    assert ship.RECIPES["english"].run(tmp_path / "ravdess", tmp_path / "o", "c").extra == {}


def test_a_fine_tuned_recipe_trains_its_parents_first_and_starts_from_them(tmp_path: Path, monkeypatch):
    """A recipe with a parent that has a parent: the eldest's folds and all-speaker model train first, then the
    parent's from them, then the recipe's; each fold (and final model) starts from the run of the same fold one
    generation up (``TrainConfig.init``)."""
    corpus = make_corpus(tmp_path / "toy", per_speaker=3)
    root = tmp_path / "datasets"
    root.mkdir()
    write_manifest(corpus, root / "csv")
    training = TrainConfig(epochs=2, batch_size=8, window_seconds=0.5, hop_seconds=0.25)
    folds = {"protocol": "loso", "folds": "0,1"}
    tuned = replace(training, epochs=1, lr=3e-4)
    grandparent = ship.Recipe("csv", "pcnn", training, (), "s0", **folds)
    parent = ship.Recipe("csv", "pcnn", tuned, (), "s0", parent=grandparent, **folds)
    recipe = ship.Recipe("csv", "pcnn", tuned, (), "s0", parent=parent, **folds)
    assert [tag for tag, _ in ship.ancestors(recipe)] == ["parent", "parent2"]
    monkeypatch.setitem(ship.RECIPES, "toy-tuned", recipe)
    monkeypatch.setitem(ship.SHIPPED, "toy-tuned", "toy-tuned.int8.onnx")
    runs = tmp_path / "runs"
    out = ship.ship(
        "toy-tuned",
        str(root),
        runs,
        tmp_path / "assets",
        tmp_path / "tests",
        tmp_path / "records",
        cache_dir=tmp_path / "cache",
    )

    assert Recognizer(out).contract.provenance["fold"] == "final"
    eldest = list(runs.glob("ship-toy-tuned-parent2-*/*/config.json"))  # from random weights
    assert len(eldest) == 3 and all(json.loads(c.read_text())["training"].get("init") is None for c in eldest)
    for child, parent_run in (
        ("ship-toy-tuned-cv", "ship-toy-tuned-parent-cv"),
        ("ship-toy-tuned-final", "ship-toy-tuned-parent-final"),
        ("ship-toy-tuned-parent-cv", "ship-toy-tuned-parent2-cv"),
        ("ship-toy-tuned-parent-final", "ship-toy-tuned-parent2-final"),
    ):
        for config in (runs / child).glob("*/config.json"):
            training_settings = json.loads(config.read_text())["training"]
            assert training_settings["init"] == str((runs / parent_run).resolve())
            assert training_settings["epochs"] <= 1 and training_settings["lr"] == 3e-4
            assert (runs / parent_run / config.parent.name / "model.pt").is_file()
    assert sorted(p.name for p in (runs / "ship-toy-tuned-cv").iterdir() if p.is_dir()) == ["s0", "s1"]


@pytest.mark.parametrize("name", [n for n, r in ship.RECIPES.items() if r.parent is not None])
def test_a_shipped_fine_tuned_recipe_fits_its_parents_weights(name: str):
    """Every shipped recipe that fine-tunes a parent (and every parent that fine-tunes its own) builds a network whose
    weights are exactly the parent's (``warm_start`` loads them strictly), on the same corpus and teacher, with a
    longer hop than the parent's."""
    from models.arch.registry import build_model, default_config
    from models.data.features import FrontEnd

    def config(r: ship.Recipe) -> dict:
        heads = {"emotion": 6, **{aux: 30 for aux in r.aux}}
        return default_config(r.arch, heads, frontend=r.frontend, backbone=r.training.backbone)

    recipe = ship.RECIPES[name]
    for _, parent in ship.ancestors(recipe):
        assert (parent.dataset, parent.arch, dict(parent.aux), dict(parent.extra)) == (
            recipe.dataset,
            recipe.arch,
            dict(recipe.aux),
            dict(recipe.extra),
        )
        assert parent.training.distill == recipe.training.distill and parent.training.seed == recipe.training.seed
        child, elder = config(recipe), config(parent)
        shapes = [{k: tuple(v.shape) for k, v in build_model(c).state_dict().items()} for c in (child, elder)]
        assert shapes[0] == shapes[1]
        assert FrontEnd.from_dict(child["frontend"]).hop_length > FrontEnd.from_dict(elder["frontend"]).hop_length
        recipe = parent
