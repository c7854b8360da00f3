"""Packed members (edge_cnn ``members`` > 1): independent networks in one set of operators, averaged when scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.arch.registry import build_model, default_config
from models.data.batches import Batch
from models.training.checkpoint import member_model, save_checkpoint
from models.training.config import TrainConfig
from models.training.distill import DistillConfig
from models.training.losses import distill_step
from models.training.surgery import shallower_run

SMALL = {"channels": [8, 16, 24, 32], "temporal": 24, "embedding": 16}


def packed(members: int = 2, seed: int = 0, shared: int = 0):
    """A packed edge_cnn with random weights and batch-norm statistics (so evaluation is no identity)."""
    torch.manual_seed(seed)
    config = default_config("edge_cnn", {"emotion": 4}, backbone={**SMALL, "members": members, "shared": shared})
    config["dropout"] = 0.0
    model = build_model(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model, config


def inputs(rows: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 60, 64, generator=g), torch.tensor([60, 45, 30][:rows])


@pytest.mark.parametrize("shared", [0, 3])  # 3: the stem and the first two blocks are one trunk the members read
def test_packed_members_are_independent_networks_averaged_in_evaluation(shared: int) -> None:
    model, config = packed(members=3, shared=shared)
    singles = [member_model(model, config, m)[0] for m in range(3)]
    x, lengths = inputs()
    with torch.no_grad():
        alone = [single(x, lengths)["emotion"] for single in singles]
        averaged = model.eval()(x, lengths)["emotion"]
        assert averaged.shape == (3, 4)
        torch.testing.assert_close(averaged, torch.stack(alone).mean(dim=0), atol=1e-5, rtol=1e-4)
        assert (alone[0] - alone[1]).abs().max() > 0.05  # different networks, so the average is no copy
        labels = {"emotion": torch.tensor([0, 1, 3])}
        scored = model.loss({"emotion": averaged}, labels)[0]  # evaluation: one row per input, targets as they are
        torch.testing.assert_close(scored, torch.nn.functional.cross_entropy(averaged, labels["emotion"]))
        trained = model.train()(x, lengths)["emotion"]  # training: each input row gives each member's row in turn
        assert trained.shape == (9, 4)
        for m, single in enumerate(singles):
            torch.testing.assert_close(trained[m::3], single.train()(x, lengths)["emotion"], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="member 3"):
        member_model(model, config, 3)
    if shared:  # one trunk: fewer parameters than three whole networks
        assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in singles[0].parameters()) * 3 - 500


class FakeTeacher:
    """Soft labels and features per utterance index, as ``distill.Targets.lookup`` gives them."""

    def __init__(self, n: int, classes: int, dim: int, seed: int) -> None:
        g = np.random.default_rng(seed)
        self.soft = g.dirichlet(np.ones(classes), size=n).astype(np.float32)
        self.feats = g.standard_normal((n, dim)).astype(np.float32)
        self.feats[1] = np.nan  # an utterance without teacher features: skipped, for every member alike

    def lookup(self, index: np.ndarray, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.soft[index], self.feats[index]


def test_each_packed_member_learns_every_target_as_if_trained_alone() -> None:
    """The packed loss (labels, teacher soft labels and features, a transfer batch) is the mean of the members'
    own losses, and each member's gradient is only its own loss's (a share of it): no member learns from another."""
    model, config = packed(members=2)
    singles = [member_model(model, config, m)[0] for m in range(2)]
    torch.manual_seed(3)
    projector = torch.nn.Linear(16, 5)
    x, lengths = inputs()
    other, other_lengths = inputs(rows=2, seed=2)

    def batch(rows: torch.Tensor, lens: torch.Tensor, labels: list[int]) -> Batch:
        index = np.arange(len(rows))
        return Batch(rows.numpy(), {"emotion": np.array(labels)}, lens.numpy(), None, index, np.array(["clean"] * 3))

    cfg = TrainConfig(label_smoothing=0.1, distill=DistillConfig("whisper-base:3"))
    main, transfer = batch(x, lengths, [0, 2, 3]), batch(other, other_lengths, [1, 1])
    teacher, transfer_teacher = FakeTeacher(3, 4, 5, seed=4), FakeTeacher(2, 4, 5, seed=5)
    t = {"emotion": torch.tensor([0, 2, 3])}

    def loss(net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        net.train().zero_grad()
        projector.zero_grad()
        return distill_step(net, projector, teacher, main, x, t, lengths, cfg, (transfer, transfer_teacher))

    total, parts = loss(model)
    total.backward()
    stem = model.backbone.stem[0].weight.grad.chunk(2)
    for m, single in enumerate(singles):
        alone, alone_parts = loss(single)
        alone.backward()
        # each member's gradient is half its own loss's: the packed loss averages the members'
        own = single.backbone.stem[0].weight.grad / 2
        assert own.norm() > 0 and (stem[m] - own).norm() <= 1e-3 * own.norm()
        singles[m] = (alone.detach(), {k: v.detach() for k, v in alone_parts.items()})
    torch.testing.assert_close(total.detach(), (singles[0][0] + singles[1][0]) / 2, atol=1e-5, rtol=1e-4)
    assert set(parts) >= {"emotion", "teacher_soft", "teacher_features", "transfer_soft", "transfer_features"}
    for name in parts:
        expected = (singles[0][1][name] + singles[1][1][name]) / 2
        torch.testing.assert_close(parts[name].detach(), expected, atol=1e-5, rtol=1e-4)


def test_packed_members_refuse_what_reads_one_network(tmp_path) -> None:
    with pytest.raises(ValueError, match="packed members"):
        TrainConfig(backbone={"members": 2}, distill=DistillConfig("whisper-base:3", frame_weight=1.0))
    config = default_config("edge_cnn", {"emotion": 4, "chars": 30}, backbone={**SMALL, "members": 2})
    with pytest.raises(ValueError, match="packed members|CTC"):
        build_model(config)
    for bad in (0, "2", 2.0):
        with pytest.raises(ValueError, match="members"):
            build_model(default_config("edge_cnn", {"emotion": 4}, backbone={"members": bad}))
    with pytest.raises(ValueError, match="shared"):
        build_model(default_config("edge_cnn", {"emotion": 4}, backbone={"members": 2, "shared": 8}))
    with pytest.raises(ValueError, match="shared"):
        build_model(default_config("edge_cnn", {"emotion": 4}, backbone={"shared": 1}))
    model, config = packed(members=2, shared=3)
    save_checkpoint(tmp_path / "run" / "fold", model, config)
    with pytest.raises(ValueError, match="not packed members"):  # cutting blocks would misplace the trunk's end
        shallower_run(tmp_path / "run", tmp_path / "cut")
