"""Evaluation protocols: speaker independence, coverage, seeding and validation carving."""

from __future__ import annotations

from collections import Counter

import pytest

from models.data.corpora import Corpus, Utterance, load_corpus
from models.data.protocols import PROTOCOLS, ProtocolError, default_protocol, make_folds

EMOTIONS = ("angry", "happy", "neutral", "sad")


def synthetic(name: str, speakers: list[str], genders: list[str | None], per_class: int = 4) -> Corpus:
    """A corpus without audio: ``per_class`` utterances per speaker and emotion."""
    utterances = [
        Utterance(f"/corpus/{s}/{e}{i}.wav", e, s, g, None, name)
        for s, g in zip(speakers, genders, strict=True)
        for e in EMOTIONS
        for i in range(per_class)
    ]
    return Corpus(name, "/corpus", EMOTIONS, utterances, [])


def casia_like() -> Corpus:
    return synthetic("casia", ["liuchanhg", "zhaoquanyin", "wangzhe", "ZhaoZuoxiang"], ["female"] * 2 + ["male"] * 2)


def emodb_like() -> Corpus:
    speakers = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    genders = ["male", "female", "female", "male", "male", "male", "female", "female", "male", "female"]
    return synthetic("emodb", speakers, genders)


def ravdess_like() -> Corpus:
    actors = list(range(1, 21))
    return synthetic("ravdess", [f"{a:02d}" for a in actors], ["male" if a % 2 else "female" for a in actors], 2)


def iemocap_like() -> Corpus:
    speakers = [f"Ses{n:02d}{g}" for n in range(1, 6) for g in "FM"]
    return synthetic("iemocap", speakers, ["female" if s.endswith("F") else "male" for s in speakers])


def cremad_like() -> Corpus:
    speakers = [str(1001 + i) for i in range(13)]
    return synthetic("cremad", speakers, ["female" if i % 3 else "male" for i in range(12)] + [None])


def tess_like() -> Corpus:
    return synthetic("tess", ["OAF", "YAF"], ["female", "female"], 10)


CASES = [
    (casia_like, "loso", 4, False),
    (emodb_like, "loso", 10, True),
    (ravdess_like, "ravdess5", 5, True),
    (iemocap_like, "loso-session", 5, True),
    (cremad_like, "speaker-kfold", 5, True),
    (tess_like, "speaker-kfold", 2, False),
]


def check_partition(corpus: Corpus, folds) -> None:
    """Each fold splits every utterance into disjoint train/val/test; tests cover each utterance once."""
    n = len(corpus.utterances)
    assert Counter(i for fold in folds for i in fold.test) == dict.fromkeys(range(n), 1)
    for fold in folds:
        train, val, test = set(fold.train), set(fold.val), set(fold.test)
        assert train and val and test
        assert len(train) + len(val) + len(test) == n and train | val | test == set(range(n))
        for part in (fold.train, fold.val, fold.test):
            assert list(part) == sorted(part) and all(type(i) is int for i in part)


def speakers_of(corpus: Corpus, indices) -> set[str]:
    return {corpus.utterances[i].speaker for i in indices}


@pytest.mark.parametrize("factory, protocol, n_folds, val_by_speaker", CASES)
def test_speaker_independent(factory, protocol, n_folds, val_by_speaker):
    corpus = factory()
    folds = make_folds(corpus, protocol)
    assert make_folds(corpus) == folds
    assert len(folds) == n_folds and len({f.name for f in folds}) == n_folds
    check_partition(corpus, folds)
    for fold in folds:
        test_speakers = speakers_of(corpus, fold.test)
        assert test_speakers.isdisjoint(speakers_of(corpus, fold.train) | speakers_of(corpus, fold.val))
        assert fold.val_by_speaker is val_by_speaker
        if val_by_speaker:
            assert speakers_of(corpus, fold.val).isdisjoint(speakers_of(corpus, fold.train))
        else:
            assert speakers_of(corpus, fold.val) <= speakers_of(corpus, fold.train)


@pytest.mark.parametrize("factory, protocol, n_folds, val_by_speaker", CASES)
def test_seeding(factory, protocol, n_folds, val_by_speaker):
    corpus = factory()
    folds = make_folds(corpus, protocol, seed=3)
    assert make_folds(corpus, protocol, seed=3) == folds
    other = make_folds(corpus, protocol, seed=4)
    assert [f.val for f in other] != [f.val for f in folds]
    if protocol != "speaker-kfold":
        assert [f.test for f in other] == [f.test for f in folds]


def test_defaults_and_names():
    names = ("casia", "emodb", "ravdess", "iemocap", "cremad", "tess", "csv")
    expected = ("loso", "loso", "ravdess5", "loso-session", "speaker-kfold", "speaker-kfold", "speaker-kfold")
    assert tuple(default_protocol(n) for n in names) == expected
    assert [f.name for f in make_folds(casia_like())] == ["ZhaoZuoxiang", "liuchanhg", "wangzhe", "zhaoquanyin"]
    ravdess = make_folds(ravdess_like())
    assert [f.name for f in ravdess] == ["actors01-04", "actors05-08", "actors09-12", "actors13-16", "actors17-20"]
    assert [speakers_of(ravdess_like(), f.test) for f in ravdess][1] == {"05", "06", "07", "08"}
    assert [f.name for f in make_folds(iemocap_like())] == ["Ses01", "Ses02", "Ses03", "Ses04", "Ses05"]
    assert [f.name for f in make_folds(cremad_like())] == [f"group{i}" for i in range(1, 6)]


def test_validation_by_speaker_is_gender_balanced():
    corpus = ravdess_like()
    genders = {u.speaker: u.gender for u in corpus.utterances}
    for fold in make_folds(corpus, "ravdess5", seed=7):
        val_speakers = speakers_of(corpus, fold.val)
        assert sorted(genders[s] for s in val_speakers) == ["female", "male"]
    for fold in make_folds(iemocap_like()):
        assert len(speakers_of(iemocap_like(), fold.val)) == 1
    cremad = cremad_like()
    genders = {u.speaker: u.gender for u in cremad.utterances}
    for seed in range(3):
        groups = [Counter(genders[s] for s in speakers_of(cremad, f.test)) for f in make_folds(cremad, seed=seed)]
        assert sorted(g["male"] for g in groups) == [0, 1, 1, 1, 1]
        assert sorted(g["female"] for g in groups) == [1, 1, 2, 2, 2]


def test_validation_by_utterance_is_stratified():
    corpus = casia_like()
    for fold in make_folds(corpus, "loso", seed=1):
        val_classes = Counter(corpus.utterances[i].emotion for i in fold.val)
        train_size = len(fold.train) + len(fold.val)
        assert len(fold.val) == round(0.15 * train_size)
        assert max(val_classes.values()) - min(val_classes.values()) <= 1 and len(val_classes) == len(EMOTIONS)


def test_random_protocol():
    corpus = ravdess_like()
    folds = make_folds(corpus, "random", seed=2)
    assert len(folds) == 5 and [f.name for f in folds] == [f"fold{i}" for i in range(1, 6)]
    check_partition(corpus, folds)
    n = len(corpus.utterances)
    for fold in folds:
        assert len(fold.test) == n // 5 and not fold.val_by_speaker
        test_classes = Counter(corpus.utterances[i].emotion for i in fold.test)
        assert set(test_classes.values()) == {n // 5 // len(EMOTIONS)}
        assert len(fold.val) == round(0.15 * (n - len(fold.test)))
    assert speakers_of(corpus, folds[0].test) & speakers_of(corpus, folds[0].train)
    assert make_folds(corpus, "random", seed=2) == folds
    assert [f.test for f in make_folds(corpus, "random", seed=5)] != [f.test for f in folds]
    assert len(make_folds(corpus, "random", k=4)) == 4


def test_errors():
    corpus = casia_like()
    with pytest.raises(ProtocolError, match="unknown protocol"):
        make_folds(corpus, "leave-everything-out")
    with pytest.raises(ProtocolError, match="seed"):
        make_folds(corpus, seed=-1)
    with pytest.raises(ProtocolError, match="numeric actor"):
        make_folds(corpus, "ravdess5")
    with pytest.raises(ProtocolError, match="Ses01F"):
        make_folds(corpus, "loso-session")
    with pytest.raises(ProtocolError, match="k >= 2"):
        make_folds(corpus, "speaker-kfold", k=1)
    with pytest.raises(ProtocolError, match="k=1000"):
        make_folds(corpus, "random", k=1000)
    with pytest.raises(ProtocolError, match="at least 2 speakers"):
        make_folds(synthetic("casia", ["only"], ["female"]))
    anonymous = synthetic("csv", ["", ""], [None, None])
    with pytest.raises(ProtocolError, match="protocol='random'"):
        make_folds(anonymous)
    assert len(make_folds(anonymous, "random")) == 5
    assert set(PROTOCOLS) == {"loso", "ravdess5", "loso-session", "speaker-kfold", "random"}


@pytest.mark.corpus
def test_real_corpora_default_folds(datasets_dir):
    casia = load_corpus("casia", datasets_dir / "casia", check_audio=False)
    folds = make_folds(casia)
    check_partition(casia, folds)
    assert [len(f.test) for f in folds] == [300] * 4 and not any(f.val_by_speaker for f in folds)
    ravdess = load_corpus("ravdess", datasets_dir / "ravdess", check_audio=False)
    folds = make_folds(ravdess)
    check_partition(ravdess, folds)
    assert [len(f.test) for f in folds] == [240] * 5
    assert all(len(f.val) == 120 and len(speakers_of(ravdess, f.val)) == 2 for f in folds)
    assert all(speakers_of(ravdess, f.test).isdisjoint(speakers_of(ravdess, f.train + f.val)) for f in folds)
