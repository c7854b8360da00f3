"""Multi-corpus training (``--extra-corpus``): the label mapping between corpora, and fold plans in which the
other corpora only ever train -- on generated audio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import make_corpus, small_config, write_manifest

from edge_ser.frontend import FrontEnd
from models.data import label_map, protocols
from models.data.corpora import EMOTIONS, Corpus, Utterance
from models.training.cli import main
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
    assert main([*args, "--out", str(tmp_path / "x"), "--teacher", "whisper-tiny.en:1"]) == 2
    assert "--extra-corpus cannot be combined with --teacher" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "y"), "--extra-corpus", f"csv={target}"]) == 2
    assert "other corpora than the training corpus" in capsys.readouterr().err


class Cut(Exception):
    """Stands for the machine stopping a run."""


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
