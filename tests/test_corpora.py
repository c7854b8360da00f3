"""Corpus loaders on tiny generated corpora named exactly as the official ones, and on the real corpora."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge_ser.errors import EdgeSERError
from models.data.corpora import CORPORA, EMOTIONS, CorpusError, load_corpus


def tone(path: Path, seconds: float = 0.05, channels: int = 1, rate: int = 16000) -> Path:
    """Write a short sine (or noise on extra channels) WAV/FLAC, creating folders as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    if channels > 1:
        noise = 0.05 * np.random.default_rng(0).standard_normal((len(t), channels - 1))
        x = np.column_stack([x, noise])
    sf.write(path, x.astype(np.float32), rate)
    return path


def garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF not really audio" * 8)
    return path


def by_name(corpus) -> dict:
    return {Path(u.path).name: u for u in corpus.utterances}


def skipped_names(corpus) -> dict:
    return {Path(p.split(":")[0]).name: reason for p, reason in corpus.skipped}


def test_registry_and_errors(tmp_path):
    assert set(CORPORA) == {"casia", "ravdess", "emodb", "iemocap", "cremad", "tess", "savee", "csv"}
    with pytest.raises(CorpusError, match="unknown corpus"):
        load_corpus("nope", tmp_path)
    with pytest.raises(CorpusError, match="does not exist") as info:
        load_corpus("casia", tmp_path / "missing")
    assert isinstance(info.value, EdgeSERError)
    with pytest.raises(CorpusError, match="no usable casia utterances"):
        load_corpus("casia", tmp_path)
    garbage(tmp_path / "savee" / "AudioData" / "DC" / "a01.wav")
    with pytest.raises(CorpusError, match="1 skipped"):
        load_corpus("savee", tmp_path / "savee")


def test_casia(tmp_path):
    root = tmp_path / "casia"
    (root).mkdir()
    (root / "transcripts.txt").write_text("201. 就是下雨也去。\n\n202. 我马上拿来。 \n", encoding="utf-8")
    tone(root / "liuchanhg" / "angry" / "201.flac")
    (root / "liuchanhg" / "angry" / "201.lab").write_text(
        "0 2890000 SIL\n2890000 4190000 jiu4\n4190000 5510000 shi4\n5510000 6000000 SIL\n"
    )
    tone(root / "wangzhe" / "sad" / "202.wav")
    tone(root / "wangzhe" / "sad" / "203.wav")
    (root / "wangzhe" / "sad" / "203.lab").write_text("0 100 SIL\n100 200 \n")
    garbage(root / "wangzhe" / "sad" / "204.wav")
    tone(root / "wangzhe" / "bored" / "205.wav")
    corpus = load_corpus("casia", root)
    assert corpus.name == "casia" and corpus.emotions == EMOTIONS["casia"]
    assert corpus.emotions == ("angry", "fear", "happy", "neutral", "sad", "surprise")
    u = by_name(corpus)
    assert sorted(u) == ["201.flac", "202.wav", "203.wav"]
    first = u["201.flac"]
    assert (first.emotion, first.speaker, first.gender, first.corpus) == ("angry", "liuchanhg", "female", "casia")
    assert first.text == "就是下雨也去。" and first.syllables == ("jiu4", "shi4")
    assert (u["202.wav"].gender, u["202.wav"].text, u["202.wav"].syllables) == ("male", "我马上拿来。", None)
    assert u["203.wav"].text is None and u["203.wav"].syllables is None
    skipped = skipped_names(corpus)
    assert "line 2 has no label" in skipped["203.lab"]
    assert "unreadable audio" in skipped["204.wav"]
    assert "not a CASIA emotion" in skipped["205.wav"]
    assert len(corpus.skipped) == 3


def test_ravdess(tmp_path):
    root = tmp_path / "ravdess"
    tone(root / "Actor_01" / "03-01-05-02-01-01-01.wav")
    tone(root / "Actor_02" / "03-01-02-01-02-02-02.flac", channels=2)
    tone(root / "Actor_02" / "03-01-08-02-02-01-02.wav")
    tone(root / "Actor_02" / "03-01-09-01-01-01-02.wav")
    tone(root / "Actor_02" / "03-02-03-01-01-01-02.wav")
    tone(root / "Actor_02" / "notes.wav")
    corpus = load_corpus("ravdess", root)
    assert corpus.emotions == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    u = by_name(corpus)
    a = u["03-01-05-02-01-01-01.wav"]
    assert (a.emotion, a.speaker, a.gender, a.text) == ("angry", "01", "male", "Kids are talking by the door")
    b = u["03-01-02-01-02-02-02.flac"]
    assert (b.emotion, b.speaker, b.gender, b.text) == ("calm", "02", "female", "Dogs are sitting by the door")
    assert u["03-01-08-02-02-01-02.wav"].emotion == "surprised"
    skipped = skipped_names(corpus)
    assert set(skipped) == {"03-01-09-01-01-01-02.wav", "03-02-03-01-01-01-02.wav", "notes.wav"}
    assert "emotion code 09" in skipped["03-01-09-01-01-01-02.wav"]
    assert "channel 02" in skipped["03-02-03-01-01-01-02.wav"]


def test_emodb(tmp_path):
    root = tmp_path / "emodb"
    tone(root / "wav" / "03a01Fa.wav")
    tone(root / "wav" / "16b10Wb.wav")
    tone(root / "wav" / "08a02Lc.wav")
    tone(root / "wav" / "99a04Nb.wav")
    tone(root / "wav" / "03a01Xa.wav")
    corpus = load_corpus("emodb", root)
    assert corpus.emotions == ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad")
    u = by_name(corpus)
    happy = u["03a01Fa.wav"]
    assert (happy.emotion, happy.speaker, happy.gender) == ("happy", "03", "male")
    assert happy.text == "Der Lappen liegt auf dem Eisschrank."
    assert (u["16b10Wb.wav"].emotion, u["16b10Wb.wav"].gender) == ("angry", "female")
    assert u["08a02Lc.wav"].emotion == "boredom"
    assert (u["99a04Nb.wav"].emotion, u["99a04Nb.wav"].gender) == ("neutral", None)
    assert list(skipped_names(corpus)) == ["03a01Xa.wav"]


def test_iemocap(tmp_path):
    root = tmp_path / "iemocap"
    s1 = root / "Session1"
    (s1 / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (s1 / "dialog" / "transcriptions").mkdir(parents=True)
    (s1 / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").write_text(
        "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\n"
        "[10.0100 - 11.3925]\tSes01F_impro01_M000\texc\t[3.0000, 3.5000, 3.0000]\n"
        "[14.8872 - 18.0175]\tSes01F_impro01_F001\tfru\t[2.0000, 3.5000, 3.5000]\n"
        "[20.0000 - 21.0000]\tSes01F_impro01_F002\tang\t[2.0000, 3.5000, 3.5000]\n"
    )
    (s1 / "dialog" / "transcriptions" / "Ses01F_impro01.txt").write_text(
        "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\n"
        "Ses01F_impro01_M000 [010.0100-011.3925]: Do you have your forms?\n"
    )
    wav = s1 / "sentences" / "wav" / "Ses01F_impro01"
    for utt in ("F000", "M000", "F001"):
        tone(wav / f"Ses01F_impro01_{utt}.wav")
    s2 = root / "Session2"
    (s2 / "dialog" / "EmoEvaluation").mkdir(parents=True)
    (s2 / "dialog" / "EmoEvaluation" / "Ses02M_script01_1.txt").write_text(
        "[1.0000 - 2.0000]\tSes02M_script01_1_F000\tsad\t[2.0000, 2.0000, 2.0000]\n"
    )
    tone(s2 / "sentences" / "wav" / "Ses02M_script01_1" / "Ses02M_script01_1_F000.wav")
    corpus = load_corpus("iemocap", root)
    assert corpus.emotions == ("angry", "happy", "neutral", "sad")
    u = {Path(x.path).stem: x for x in corpus.utterances}
    assert sorted(u) == ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses02M_script01_1_F000"]
    f0 = u["Ses01F_impro01_F000"]
    assert (f0.emotion, f0.speaker, f0.gender, f0.text) == ("neutral", "Ses01F", "female", "Excuse me.")
    m0 = u["Ses01F_impro01_M000"]
    assert (m0.emotion, m0.speaker, m0.gender, m0.text) == ("happy", "Ses01M", "male", "Do you have your forms?")
    s = u["Ses02M_script01_1_F000"]
    assert (s.emotion, s.speaker, s.gender, s.text) == ("sad", "Ses02F", "female", None)
    skipped = skipped_names(corpus)
    assert "outside the 4-class set" in skipped["Ses01F_impro01_F001.wav"]
    assert skipped["Ses01F_impro01_F002.wav"] == "audio file not found"


def test_cremad(tmp_path):
    root = tmp_path / "cremad"
    tone(root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    tone(root / "AudioWAV" / "1002_IEO_HAP_HI.wav")
    tone(root / "AudioWAV" / "1003_TSI_NEU_XX.wav")
    tone(root / "AudioWAV" / "1003_TSI_SUR_XX.wav")
    corpus = load_corpus("cremad", root)
    assert corpus.emotions == ("angry", "disgust", "fear", "happy", "neutral", "sad")
    assert {u.gender for u in corpus.utterances} == {None}
    (root / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n"
    )
    corpus = load_corpus("cremad", root)
    u = by_name(corpus)
    a = u["1001_DFA_ANG_XX.wav"]
    assert (a.emotion, a.speaker, a.gender, a.text) == ("angry", "1001", "male", "Don't forget a jacket")
    assert (u["1002_IEO_HAP_HI.wav"].emotion, u["1002_IEO_HAP_HI.wav"].gender) == ("happy", "female")
    assert u["1002_IEO_HAP_HI.wav"].text == "It's eleven o'clock"
    assert (u["1003_TSI_NEU_XX.wav"].emotion, u["1003_TSI_NEU_XX.wav"].gender) == ("neutral", None)
    assert list(skipped_names(corpus)) == ["1003_TSI_SUR_XX.wav"]


def test_tess(tmp_path):
    root = tmp_path / "tess"
    data = root / "TESS Toronto emotional speech set data"
    tone(data / "OAF_angry" / "OAF_back_angry.wav")
    tone(data / "YAF_pleasant_surprised" / "YAF_lean_ps.wav")
    tone(data / "YAF_neutral" / "YAF_germ_neutral.wav")
    tone(data / "YAF_neutral" / "YAF_germ_bored.wav")
    tone(data / ".hidden" / "OAF_back_sad.wav")
    corpus = load_corpus("tess", root)
    assert corpus.emotions == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    u = by_name(corpus)
    assert sorted(u) == ["OAF_back_angry.wav", "YAF_germ_neutral.wav", "YAF_lean_ps.wav"]
    a = u["OAF_back_angry.wav"]
    assert (a.emotion, a.speaker, a.gender, a.text) == ("angry", "OAF", "female", "back")
    ps = u["YAF_lean_ps.wav"]
    assert (ps.emotion, ps.speaker, ps.text) == ("surprise", "YAF", "lean")
    assert list(skipped_names(corpus)) == ["YAF_germ_bored.wav"]


def test_savee(tmp_path):
    root = tmp_path / "savee"
    tone(root / "AudioData" / "DC" / "a01.wav")
    tone(root / "AudioData" / "JK" / "sa03.wav")
    tone(root / "AudioData" / "KL" / "su15.wav")
    tone(root / "AudioData" / "KL" / "n30.wav")
    tone(root / "AudioData" / "KL" / "x01.wav")
    corpus = load_corpus("savee", root)
    assert corpus.emotions == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    u = by_name(corpus)
    expected = [("angry", "DC"), ("sad", "JK"), ("surprise", "KL"), ("neutral", "KL")]
    assert [(u[n].emotion, u[n].speaker) for n in ("a01.wav", "sa03.wav", "su15.wav", "n30.wav")] == expected
    assert {x.gender for x in corpus.utterances} == {"male"} and {x.text for x in corpus.utterances} == {None}
    assert list(skipped_names(corpus)) == ["x01.wav"]


def test_csv_manifest(tmp_path):
    data = tmp_path / "data"
    tone(data / "clips" / "a.wav")
    tone(data / "clips" / "b.flac")
    absolute = tone(tmp_path / "elsewhere" / "c.wav")
    manifest = data / "manifest.csv"
    manifest.write_text(
        "path,emotion,speaker,gender\n"
        "clips/a.wav,sad,s1,F\n"
        f"{absolute},happy,s2,male\n"
        "clips/b.flac,angry,s1,\n"
        "clips/missing.wav,sad,s3,m\n"
        "clips/a.wav,,s1,f\n"
        "clips/a.wav,sad,s1,robot\n"
    )
    corpus = load_corpus("csv", manifest)
    assert corpus.name == "csv" and corpus.emotions == ("angry", "happy", "sad")
    u = by_name(corpus)
    assert (u["a.wav"].path, u["a.wav"].emotion, u["a.wav"].speaker) == (str(data / "clips" / "a.wav"), "sad", "s1")
    assert (u["a.wav"].gender, u["c.wav"].gender, u["b.flac"].gender) == ("female", "male", None)
    assert u["c.wav"].path == str(absolute)
    reasons = dict(corpus.skipped)
    assert reasons[str(data / "clips" / "missing.wav")] == "audio file not found"
    assert reasons[f"{manifest}:6"] == "empty path or emotion"
    assert "robot" in reasons[f"{manifest}:7"]
    minimal = data / "minimal.csv"
    minimal.write_text("path,emotion\nclips/a.wav,calm\n")
    only = load_corpus("csv", minimal).utterances
    assert [(x.emotion, x.speaker, x.gender) for x in only] == [("calm", "", None)]
    (data / "bad.csv").write_text("file,label\nclips/a.wav,sad\n")
    with pytest.raises(CorpusError, match="path, emotion|emotion, path"):
        load_corpus("csv", data / "bad.csv")
    with pytest.raises(CorpusError, match="manifest file"):
        load_corpus("csv", data)


def test_check_audio(tmp_path):
    root = tmp_path / "savee"
    garbage(root / "AudioData" / "DC" / "a01.wav")
    sf.write(root / "AudioData" / "DC" / "a02.wav", np.zeros(0, dtype=np.float32), 16000)
    tone(root / "AudioData" / "DC" / "a03.wav")
    checked = load_corpus("savee", root)
    assert [Path(x.path).name for x in checked.utterances] == ["a03.wav"]
    reasons = skipped_names(checked)
    assert "unreadable audio" in reasons["a01.wav"] and "empty" in reasons["a02.wav"]
    unchecked = load_corpus("savee", root, check_audio=False)
    assert len(unchecked.utterances) == 3 and unchecked.skipped == []


@pytest.mark.corpus
def test_real_casia(datasets_dir):
    corpus = load_corpus("casia", datasets_dir / "casia")
    utts = corpus.utterances
    assert len(utts) + sum(p.endswith((".flac", ".wav")) for p, _ in corpus.skipped) == 1200
    assert len(utts) == 1200
    assert Counter((u.speaker, u.emotion) for u in utts) == {
        (s, e): 50 for s in ("liuchanhg", "zhaoquanyin", "wangzhe", "ZhaoZuoxiang") for e in corpus.emotions
    }
    genders = {"liuchanhg": "female", "zhaoquanyin": "female", "wangzhe": "male", "ZhaoZuoxiang": "male"}
    assert {(u.speaker, u.gender) for u in utts} == set(genders.items())
    assert all(u.text for u in utts)
    # 5 files lack a .lab; one .lab (ZhaoZuoxiang/fear/228) has unlabelled segments and is reported as skipped.
    no_lab = [u for u in utts if u.syllables is None]
    broken_labs = [p for p, _ in corpus.skipped if p.endswith(".lab")]
    assert len(no_lab) == 5 + len(broken_labs) and len(broken_labs) <= 1
    assert all(s[-1].isdigit() and s != "SIL" for u in utts if u.syllables for s in u.syllables)


@pytest.mark.corpus
def test_real_ravdess(datasets_dir):
    corpus = load_corpus("ravdess", datasets_dir / "ravdess")
    utts = corpus.utterances
    assert len(utts) == 1200 and corpus.skipped == []
    assert Counter(u.speaker for u in utts) == {f"{a:02d}": 60 for a in range(1, 21)}
    assert Counter(u.emotion for u in utts) == {e: (80 if e == "neutral" else 160) for e in corpus.emotions}
    assert all(u.gender == ("male" if int(u.speaker) % 2 else "female") for u in utts)
    assert {u.text for u in utts} == {"Kids are talking by the door", "Dogs are sitting by the door"}
