"""The ensemble teacher (``--ensemble-teacher``): finished runs' same fold teaches a student on its own crops."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_train import toy_pcnn_args

from edge_ser.frontend import FrontEnd, Normalization
from models.training.checkpoint import load_checkpoint, load_tensors
from models.training.cli import main
from models.training.ensemble import EnsembleConfig, EnsembleTeacher, fold_ensemble, renormalization

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[Path]]:
    """Two one-epoch edge_cnn runs (seeds 0 and 1) of fold 0 of a generated corpus, and the arguments they took."""
    tmp_path = tmp_path_factory.mktemp("ensemble")
    _, argv = toy_pcnn_args(tmp_path)
    argv = [*("edge_cnn" if a == "pcnn" else a for a in argv), "--folds", "0"]
    runs = [tmp_path / f"seed{s}" for s in (0, 1)]
    for seed, out in enumerate(runs):
        assert main([*argv, "--seed", str(seed), "--out", str(out)]) == 0
    return tmp_path, argv, runs


def _fold(run: Path) -> str:
    return next(run.glob("*/config.json")).parent.name


def _members(runs: list[Path], normalization: Normalization, **kw: object):
    config = json.loads((runs[0] / _fold(runs[0]) / "config.json").read_text())
    args = {
        "corpus": config["training"]["corpus"],
        "protocol": config["training"]["protocol"],
        "fold": _fold(runs[0]),
        "frontend": FrontEnd.from_dict(config["frontend"]),
        "normalization": normalization,
        "labels": config["labels"]["emotion"],
        "device": torch.device("cpu"),
    }
    return fold_ensemble(EnsembleConfig(tuple(str(r) for r in runs), temperature=2.0), **{**args, **kw})


class _Linear(torch.nn.Module):
    """A stand-in member: emotion logits linear in the time-averaged input."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"emotion": x.mean(dim=1) @ self.weight}


def test_members_read_the_students_inputs_as_they_normalize_their_own(parents) -> None:
    """Members see the student's batch mapped into their own normalization (the map turns features normalized one
    way into the same features normalized the other way, and each loaded member carries its own); the teacher
    averages the members' probabilities at its temperature; its loss is zero for a student that says what they
    say and grows as it departs."""
    _, _, runs = parents
    gen = torch.Generator().manual_seed(0)
    n_feat = 5
    student = Normalization("global", mean=tuple(0.5 + 0.1 * i for i in range(n_feat)), std=(2.0,) * n_feat)
    member = Normalization("global", mean=(-1.0,) * n_feat, std=tuple(0.5 + 0.2 * i for i in range(n_feat)))
    features = torch.randn(3, 40, n_feat, generator=gen) * 3
    scale, shift = renormalization(student, member)
    torch.testing.assert_close(
        ((features - torch.tensor(student.mean)) / torch.tensor(student.std)).float() * scale + shift,
        ((features - torch.tensor(member.mean)) / torch.tensor(member.std)).float(),
        atol=1e-5,
        rtol=1e-5,
    )
    fold = _fold(runs[0])
    own = [Normalization.from_dict(load_checkpoint(r / fold)[1]["normalization"]) for r in runs]
    width = len(own[0].mean)
    loaded = _members(runs, Normalization("global", mean=(0.0,) * width, std=(1.0,) * width))
    for (_, got_scale, got_shift), norm in zip(loaded.members, own):
        want_scale, want_shift = renormalization(Normalization("global", (0.0,) * width, (1.0,) * width), norm)
        torch.testing.assert_close(got_scale, want_scale)
        torch.testing.assert_close(got_shift, want_shift)

    weights = [torch.randn(n_feat, 4, generator=gen) * 3 for _ in range(2)]
    teacher = EnsembleTeacher([(_Linear(w), scale, shift) for w in weights], temperature=2.0)
    x = ((features - torch.tensor(student.mean)) / torch.tensor(student.std)).float()
    theirs = ((features - torch.tensor(member.mean)) / torch.tensor(member.std)).float()
    lengths = torch.full((3,), 40)
    each = [torch.softmax(theirs.mean(dim=1) @ w / 2.0, dim=1) for w in weights]
    torch.testing.assert_close(teacher.probabilities(x, lengths), (each[0] + each[1]) / 2)
    ones, zeros = torch.ones(n_feat), torch.zeros(n_feat)
    single = EnsembleTeacher([(_Linear(weights[0]), ones, zeros)], temperature=2.0)
    logits = x.mean(dim=1) @ weights[0]
    assert float(single.loss(logits, x, lengths)) < 1e-6
    away = torch.tensor([3.0, -3.0, 0.0, 0.0])
    losses = [float(single.loss(logits + bump * away, x, lengths)) for bump in (1, 2)]
    assert 1e-3 < losses[0] < losses[1]


def test_a_student_trains_with_the_ensemble_and_records_it(parents) -> None:
    """``--ensemble-teacher`` adds the ensemble's loss to every epoch's record and its runs to the settings, which
    a run without it leaves out (older runs resume); the loss trains the student: at weight 0 its weights are those
    of a run without the ensemble, at weight 2 they are not."""
    tmp_path, argv, runs = parents
    out = tmp_path / "student"
    assert main([*argv, "--ensemble-teacher", *map(str, runs), "--ensemble-weight", "2", "--out", str(out)]) == 0
    assert main([*argv, "--ensemble-teacher", *map(str, runs), "--ensemble-weight", "0", "--out", str(out) + "0"]) == 0
    assert main([*argv, "--out", str(out) + "-plain"]) == 0
    fold = _fold(out)
    weights = {name: load_tensors(Path(f"{out}{name}") / fold / "model.pt") for name in ("", "0", "-plain")}
    assert all(torch.equal(v, weights["-plain"][k]) for k, v in weights["0"].items())
    assert not all(torch.equal(v, weights["-plain"][k]) for k, v in weights[""].items())
    metrics = json.loads((out / fold / "metrics.json").read_text())
    assert all(record["ensemble"] > 0 for record in metrics["history"])
    training = json.loads((out / fold / "config.json").read_text())["training"]
    assert training["ensemble"] == {"runs": [str(r.resolve()) for r in runs], "weight": 2.0, "temperature": 2.0}
    assert "ensemble" not in json.loads((runs[0] / fold / "config.json").read_text())["training"]


def test_members_that_could_have_heard_the_test_speakers_are_refused(parents, capsys) -> None:
    """A member must be the same fold of the same corpus and protocol, with the same front-end: a fold of that name
    trained on another split, another fold, another front-end or a missing run is a clean error before anything
    trains; so are bad settings."""
    tmp_path, argv, runs = parents
    other_fold = tmp_path / "fold1"
    assert main([*(a if a != "0" else "1" for a in argv), "--out", str(other_fold)]) == 0
    other_frontend = tmp_path / "hop20"
    frontend = '{"kind": "logmel", "n_mels": 64, "window": "hann", "hop_length": 0.02}'
    assert main([*argv, "--frontend", frontend, "--out", str(other_frontend)]) == 0
    relabelled = tmp_path / "relabelled" / _fold(runs[0])  # the same fold's name, trained on another split
    relabelled.parent.mkdir()
    shutil.copytree(runs[0] / _fold(runs[0]), relabelled)
    config = json.loads((relabelled / "config.json").read_text())
    config["training"]["protocol"] = "random"
    (relabelled / "config.json").write_text(json.dumps(config))
    refusals = {
        "could have heard": [str(relabelled.parent)],
        "no finished fold": [str(other_fold)],
        "front-end or emotion classes differ": [str(other_frontend)],
        "no finished fold ": [str(tmp_path / "nowhere")],
    }
    for message, members in refusals.items():
        out = tmp_path / f"refused-{len(message)}"
        assert main([*argv, "--ensemble-teacher", *members, "--out", str(out)]) == 2
        assert message.strip() in capsys.readouterr().err
        assert not list(out.glob("*/model.pt"))
    with pytest.raises(ValueError, match="distinct"):
        EnsembleConfig((str(runs[0]), str(runs[0])))
    with pytest.raises(ValueError, match="temperature"):
        EnsembleConfig((str(runs[0]),), temperature=0)
